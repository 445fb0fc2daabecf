"""Render the judge's view: one bottle top (or a thing that is not one) up close, for model 3.

Run headless:

    blender -b -t 1 -P recipe/render/render_caps.py -- \
        --out /var/tmp/caps --backgrounds /var/tmp/bc-backgrounds --start 0 --count 3000 --seed 41

Model 2's judge learned its training sources rather than the cap (the model-3 issue): white
and silver printed crown caps on clear glass read to it as a bright open rim, foil-wrapped
open necks as caps, bare PET threads as screw caps. This script renders exactly those kinds,
each drawn on its own so that training can hold a whole family out and test on it:

* ``kind``: the thing at the centre: ``crown`` (white, silver, printed one- or two-colour,
  gold, red, black, other colours; 21 crimps), ``twist``, ``pet_screw``, ``pet_sport``,
  ``foil_capped`` (foil over a cap), for closed; ``bare`` (a glass lip), ``foil_open`` (foil torn
  below the lip), ``pet_bare`` (threads and neck ring), for open; ``tumbler``, ``wine_glass``,
  ``jar``, ``cup``, ``loose_cap`` for ``none`` (rims and caps that are no bottle's top);
* glass clear, green or amber (PET clear or tinted), empty, part-filled or full, foam;
* a camera from slightly below the lip to straight above it, rolled, close or far: the frame
  is square and the top's box spans a fifth to a third of it, so training can cut views of
  1.5 to 4 times the top's side from one render (the model-3 issue: an answer must not move
  with the crop's span);
* hand-held (fingers round the neck), night, backlight, Blender's HDRI rooms (interior, city,
  night) and the background plates; a neighbour bottle or a glass behind now and then.

Each image ``NNNNNN.jpg`` (``--size`` square) gets a JSON line in ``labels-START.jsonl`` with
every choice, ``label`` (open, closed, none), ``kind``, ``glass_tone`` and the box of the top
(or the rim) in the image's pixels. Test families are rendered apart: another seed, other
indices and other background plates (see the model card).
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import bpy
from mathutils import Matrix, Vector

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render_bottles as rb  # noqa: E402  (Blender's Python has no package context)
import render_tops as rt  # noqa: E402

WHITE_CAPS = [(0.92, 0.92, 0.9), (0.97, 0.97, 0.97), (0.88, 0.9, 0.93)]
SILVER_CAPS = [(0.75, 0.75, 0.78), (0.85, 0.85, 0.87), (0.65, 0.66, 0.7)]
CROWN_STYLES = {
    "white": WHITE_CAPS,
    "silver": SILVER_CAPS,
    "gold": [(0.8, 0.65, 0.2), (0.9, 0.75, 0.35)],
    "red": [(0.7, 0.05, 0.05), (0.85, 0.1, 0.1)],
    "black": [(0.02, 0.02, 0.02), (0.08, 0.08, 0.1)],
    "other": [(0.05, 0.15, 0.6), (0.05, 0.4, 0.1), (0.9, 0.5, 0.05), (0.4, 0.05, 0.4)],
}
KINDS = {
    "closed": (["crown", "twist", "pet_screw", "pet_sport", "foil_capped"], [6, 1.2, 1.5, 0.8, 1]),
    "open": (["bare", "foil_open", "pet_bare"], [6, 1.5, 2]),
    "none": (["tumbler", "wine_glass", "jar", "cup", "loose_cap"], [2, 1.5, 1.5, 1, 1]),
}


def parse_args():
    parser = rb.shard_parser(seed=41, size=224, samples=16)
    parser.add_argument("--none-share", type=float, default=0.18, help="share of images with no bottle top")
    parser.add_argument(
        "--kinds",
        type=lambda text: [kind.strip() for kind in text.split(",") if kind.strip()],
        help="render only these kinds (comma-separated, e.g. foil_open,foil_capped,bare), each at the "
        "weight it has in KINDS: more of the families the judge gets wrong, without redrawing the rest",
    )
    args = parser.parse_args(rb.script_argv())
    known = {kind for kinds, _weights in KINDS.values() for kind in kinds}
    if args.kinds and not set(args.kinds) <= known:
        parser.error(f"unknown kinds {sorted(set(args.kinds) - known)}; known: {sorted(known)}")
    return args


def draw_kind(rng: random.Random, args) -> tuple[str, str]:
    """The label and kind of one render: the default mix, or only ``args.kinds`` when given.

    The default path draws exactly as before, so renders made without ``--kinds`` are unchanged.
    """
    if not args.kinds:
        label = "none" if rng.random() < args.none_share else rng.choice(["open", "closed"])
        kinds, weights = KINDS[label]
        return label, rng.choices(kinds, weights)[0]
    choices = [
        (label, kind, weight)
        for label, (kinds, weights) in KINDS.items()
        for kind, weight in zip(kinds, weights, strict=True)
        if kind in args.kinds
    ]
    label, kind, _weight = rng.choices(choices, [weight for _l, _k, weight in choices])[0]
    return label, kind


# ---------------------------------------------------------------- caps
def printed_crown(rng: random.Random, p, tilt: float, style: str):
    """A crown cap of one style: plain metallic, or printed (a design in the style's colour and another)."""
    cap = rb.crown_cap(rng, p, tilt)
    base = rng.choice(CROWN_STYLES[style])
    printed = rng.random() < 0.55
    if printed:
        mat = rb.procedural_art(rng, "cap_print", scale=(1.5, 7.0))
        ramp = next(n for n in mat.node_tree.nodes if n.type == "VALTORGB")
        second = rng.choice([c for s in CROWN_STYLES.values() for c in s])
        ramp.color_ramp.elements[0].color = (*base, 1)
        ramp.color_ramp.elements[1].color = (*second, 1)
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Metallic"].default_value = rng.uniform(0.2, 0.8)
        bsdf.inputs["Roughness"].default_value = rng.uniform(0.15, 0.5)
    else:
        mat, _ = rb.principled("cap", base, roughness=rng.uniform(0.1, 0.45), metallic=rng.uniform(0.5, 1.0))
    cap.data.materials.clear()
    cap.data.materials.append(mat)
    return cap, printed


def sports_cap(rng: random.Random, p, tilt: float):
    """A PET sports cap: a tall screw cap with a narrower push-pull spout on top."""
    cap = rt.plastic_cap(rng, p, tilt)
    spout_r = p.lip_r * rng.uniform(0.45, 0.6)
    h = rng.uniform(0.008, 0.013)
    top = p.top + 0.0016 * cap.scale[2]
    colour = rng.choice(rt.PLASTIC_CAPS + [(0.95, 0.95, 0.95)])
    mat, _ = rb.principled("spout", colour, roughness=rng.uniform(0.3, 0.6))
    spout = rb.lathe("spout", [(spout_r, top - 0.001), (spout_r, top + h), (spout_r * 0.6, top + h + 0.001)], mat)
    return [cap, spout]


# ---------------------------------------------------------------- things that are not tops
def glassware(rng: random.Random, kind: str, glass_colour) -> tuple[list, SimpleNamespace]:
    """A tumbler, wine glass, jar or cup standing at the origin; returns its objects and its rim (r, z)."""
    glass, _ = rb.principled("glass", glass_colour, roughness=rng.choice([0.0, 0.05, 0.1]), transmission=1.0)
    if kind == "tumbler":
        r, h = rng.uniform(0.03, 0.045), rng.uniform(0.08, 0.14)
        shape = [(0.0005, 0), (r * 0.85, 0), (r, h), (r - 0.002, h), (r * 0.85 - 0.002, 0.008), (0.0005, 0.008)]
        objs = [rb.lathe("tumbler", shape, glass)]
    elif kind == "wine_glass":
        r, stem = rng.uniform(0.03, 0.045), rng.uniform(0.06, 0.1)
        bowl = rng.uniform(0.08, 0.11)
        h = stem + bowl
        shape = [(0.0005, 0), (0.035, 0), (0.035, 0.002), (0.004, 0.004), (0.004, stem)]
        shape += [(r * 1.1, stem + bowl * 0.45), (r, h), (r - 0.0015, h), (r * 1.1 - 0.0015, stem + bowl * 0.45)]
        shape += [(0.0005, stem + 0.004)]
        objs = [rb.lathe("wine_glass", shape, glass)]
    elif kind == "jar":
        r, h = rng.uniform(0.035, 0.05), rng.uniform(0.08, 0.13)
        rim = r * rng.uniform(0.75, 0.9)
        shape = [(0.0005, 0), (r, 0), (r, h - 0.02), (rim, h - 0.008), (rim, h), (rim - 0.002, h)]
        shape += [(rim - 0.002, h - 0.008), (r - 0.002, h - 0.02), (r - 0.002, 0.004), (0.0005, 0.004)]
        objs = [rb.lathe("jar", shape, glass)]
        r = rim
    else:  # a cup or mug: opaque ceramic
        r, h = rng.uniform(0.035, 0.045), rng.uniform(0.07, 0.1)
        ceramic, _ = rb.principled("ceramic", rng.choice(rt.PLASTIC_CAPS + [(0.95, 0.95, 0.92)]), roughness=0.3)
        shape = [(0.0005, 0), (r * 0.8, 0), (r, h), (r - 0.003, h), (r * 0.8 - 0.003, 0.006), (0.0005, 0.006)]
        objs = [rb.lathe("cup", shape, ceramic)]
    if kind in ("tumbler", "jar", "cup") and rng.random() < 0.5:
        liquid, _ = rb.principled("drink", rng.choice([(0.9, 0.55, 0.1), (0.3, 0.12, 0.03), (0.9, 0.9, 0.95)]))
        level = h * rng.uniform(0.3, 0.85)
        objs.append(rb.lathe("drink", [(0.0005, 0.009), (r * 0.8, 0.009), (r * 0.85, level), (0.0005, level)], liquid))
    return objs, SimpleNamespace(lip_r=r, top=h, R=r, H=h * 0.6, rn=r)


# ---------------------------------------------------------------- the bottle
def bottle(rng: random.Random, label: str, kind: str, meta: dict):
    """Build the bottle for ``kind``; returns its profile."""
    if kind.startswith("pet"):
        family_name = "pet"
    else:
        family_name = rng.choices(["longneck", "stubby", "corona", "heineken", "soda"], [3, 1, 2, 1.5, 1])[0]
    tone = rng.choices(["clear", "green", "amber"], [4, 2, 2])[0] if family_name != "pet" else "pet"
    glass_colour = rng.choice({"clear": rb.CLEAR, "green": rb.GREEN, "amber": rb.AMBER, "pet": rt.CLEAR_PET}[tone])
    fill = rng.choices([0.0, 1.0, rng.random()], [3, 3, 4])[0]
    beer = rng.choice([(0.9, 0.55, 0.1), (0.8, 0.4, 0.05), (0.3, 0.12, 0.03), (0.95, 0.8, 0.3), (0.9, 0.95, 1.0)])
    art = rb.procedural_art(rng, "art") if rng.random() < 0.8 else None
    neck_art = rb.procedural_art(rng, "neck_art") if rng.random() < 0.6 else None
    foil = kind.startswith("foil")
    # Build an open bottle; the closure is added below, so every kind shares the same bottles.
    p, info, objs = rt.build_bottle(
        rng, "open", family_name, glass_colour, fill, art, neck_art, Vector(), beer, foil, None
    )
    if foil:  # render_tops' foil: over the cap when closed, torn below the lip when open
        for obj in objs:
            if obj.name.startswith("foil"):
                bpy.data.objects.remove(obj, do_unlink=True)
        rt.foil_wrap(rng, p, closed=label == "closed")
    tilt = math.radians(rng.uniform(-6, 6))
    if kind == "crown":
        style = rng.choices(list(CROWN_STYLES), [3, 3, 1.5, 1, 1, 1.5])[0]
        _cap, printed = printed_crown(rng, p, tilt, style)
        meta.update(cap_style=style, cap_printed=printed)
    elif kind == "twist":
        rb.twist_cap(rng, p, tilt)
    elif kind == "pet_screw":
        rt.plastic_cap(rng, p, tilt)
    elif kind == "pet_sport":
        sports_cap(rng, p, tilt)
    elif kind == "bare" and rng.random() < 0.08:
        foam, _ = rb.principled("foam", (0.95, 0.93, 0.85), roughness=0.8)
        rb.foam_drop(p, foam)
        meta["extra"] = "foam"
    meta.update(family=family_name, glass_tone=tone, fill=round(fill, 2))
    if rng.random() < 0.2:  # hand-held: fingers round the neck, below the top
        neck = SimpleNamespace(R=p.rn + 0.002, H=max(0.03, (p.top - 0.05) / 0.75))
        rb.hand(rng, neck, Vector())
        meta["hand"] = True
    return p


def neighbour(rng: random.Random, meta: dict) -> None:
    """Another bottle or a glass behind or beside the subject, partly in the frame."""
    angle = rng.uniform(0, 2 * math.pi)
    distance = rng.uniform(0.08, 0.2)
    where = Vector((math.cos(angle) * distance, math.sin(angle) * distance, 0))
    before = set(bpy.data.objects.keys())
    if rng.random() < 0.6:
        label = rng.choice(["open", "closed"])
        family = rng.choice(["longneck", "stubby", "corona", "heineken"])
        rt.build_bottle(
            rng,
            label,
            family,
            rng.choice(rt.FAMILIES[family]["glass"]),
            rng.random(),
            None,
            None,
            where,
            (0.9, 0.55, 0.1),
            False,
            None,
        )
        meta["neighbour"] = f"bottle_{label}"
    else:
        objs, _ = glassware(rng, rng.choice(["tumbler", "wine_glass"]), rb.CLEAR[0])
        for obj in objs:
            obj.location += where
        meta["neighbour"] = "glass"
    meta["neighbour_objects"] = len(set(bpy.data.objects.keys()) - before)


# ---------------------------------------------------------------- camera
def aim_camera(rng: random.Random, scene, cam, cam_data, subject, size: int) -> dict:
    """A square frame in which the subject's top spans a fifth to a third of the side, seen from any height."""
    elevation = math.radians(
        rng.choices([rng.uniform(-10, 15), rng.uniform(15, 50), rng.uniform(50, 90)], [4, 4, 2])[0]
    )
    azimuth = rng.uniform(0, 2 * math.pi)
    fraction = rng.uniform(0.2, 0.34)  # the top's side over the frame's side
    top_side = 2 * (subject.lip_r + rt.TOP_MARGIN)
    fov = 2 * math.atan(18 / cam_data.lens)
    distance = top_side / fraction / (2 * math.tan(fov / 2))
    centre = Vector((0, 0, subject.top - rt.TOP_BELOW / 2))
    offset = Vector(
        (math.cos(azimuth) * math.cos(elevation), math.sin(azimuth) * math.cos(elevation), math.sin(elevation))
    )
    cam.location = centre + offset * distance
    jitter = top_side * 0.6
    aim = centre + Vector((rng.uniform(-jitter, jitter), rng.uniform(-jitter, jitter), rng.uniform(-jitter, jitter)))
    cam.rotation_euler = (aim - cam.location).to_track_quat("-Z", "Y").to_euler()
    roll = rng.gauss(0, 10) if rng.random() < 0.8 else rng.uniform(-90, 90)
    cam.rotation_euler.rotate_axis("Z", math.radians(roll))
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    return {
        "elevation_deg": round(math.degrees(elevation), 1),
        "roll_deg": round(roll, 1),
        "distance": round(distance, 3),
    }


def render_one(index: int, args, backgrounds: list[Path], hdris: list[str]) -> dict:
    rng = random.Random(args.seed * 1_000_003 + index)
    random.seed(args.seed * 7_919 + index)
    rb.reset_scene()
    label, kind = draw_kind(rng, args)
    meta: dict = {"index": index, "label": label, "kind": kind}
    if label == "none":
        if kind == "loose_cap":
            cap = rt.loose_cap(rng, Vector())
            subject = SimpleNamespace(lip_r=0.0135, top=0.006)
            meta["cap_up"] = cap.location.z > 0.004
        else:
            tone = rng.choices(["clear", "green", "amber"], [6, 1, 1])[0]
            _objs, subject = glassware(
                rng, kind, rng.choice({"clear": rb.CLEAR, "green": rb.GREEN, "amber": rb.AMBER}[tone])
            )
            meta["glass_tone"] = tone
    else:
        subject = bottle(rng, label, kind, meta)
    if rng.random() < 0.3:
        neighbour(rng, meta)
    night = rng.random() < 0.12
    meta["night"] = night
    if hdris and rng.random() < 0.55:
        meta.update(rt.hdri_world(rng, rng.choice(hdris)))
    else:
        meta.update(rb.setup_world(rng, backgrounds))
    if rng.random() < 0.7:
        rb.table(rng, backgrounds, rng.choice(["studio", "studio", "line"]))
    scene, cam, cam_data, _aspect = rb.new_camera(rng, args.size, (24, 85))
    meta.update(aim_camera(rng, scene, cam, cam_data, subject, args.size))
    target = Vector((0, 0, subject.top))
    if not night and not meta["world"].startswith("hdri") and rng.random() < 0.7:
        facing = (target - cam.location).normalized()
        rb.backdrop(rng, backgrounds, rng.uniform(0.3, 1.5), rng.uniform(2, 5), target, facing)
    lights = []
    for _ in range(rng.randint(1, 3)):
        behind = rng.random() < 0.2
        direction = (target - cam.location).normalized()
        pos = target + (
            direction * rng.uniform(0.3, 0.8) if behind else Vector((rng.uniform(-1, 1), rng.uniform(-1, 1), 0))
        )
        pos.z = max(pos.z, 0.05) + rng.uniform(0.0, 0.8)
        energy = rng.uniform(5, 80) * (0.3 if night else 1) * (3 if behind else 1)
        lights.append(round(rb.blackbody_light(rng, pos, target, rng.uniform(0.1, 1.5), energy), 0))
    meta["light_kelvin"] = lights
    if night:
        scene.world.node_tree.nodes["Background"].inputs["Strength"].default_value *= 0.1
    scene.view_settings.exposure = rng.uniform(-0.8, 0.9)
    rb.depth_of_field(rng, cam, cam_data, target, 0.3, (1.8, 8.0), meta)
    rt.setup_render(scene, args.samples)
    bpy.context.view_layer.update()
    meta.update(rt.top_box(scene, cam, subject, Matrix.Identity(4), args.size, args.size))
    meta.update(width=args.size, height=args.size, lens=round(cam_data.lens, 1))
    path = args.out / f"{index:06d}.jpg"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    meta["path"] = path.name
    return meta


def main() -> None:
    args = parse_args()
    backgrounds = rb.background_plates(args.backgrounds)
    hdris = rt.hdri_paths()
    args.out.mkdir(parents=True, exist_ok=True)
    rb.render_range(
        args,
        lambda index: render_one(index, args, backgrounds, hdris),
        lambda m: f"{m['label']} {m['kind']} {m.get('cap_style', '')}",
    )


if __name__ == "__main__":
    main()
