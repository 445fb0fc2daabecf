"""Render scenes with every bottle top annotated, for model 2's top finder and top judge.

Run headless:

    blender -b -t 1 -P recipe/render/render_tops.py -- \
        --out /tmp/tops --backgrounds /tmp/bc-backgrounds --start 0 --count 2000 --seed 11

Builds on ``render_bottles.py`` (its bottle geometry, caps and materials) and adds
what model 1.0.0 lacked, as the model-2 issue lists it:

* several bottles in one scene (a pair, a row on a filling line, a crate, a table),
  each open or closed on its own, so a photo can hold mixed tops;
* PET bottles with plastic screw caps, soda long-necks with twist caps, foil-wrapped
  necks, a crown cap lying beside an open bottle (a cap that is not a top);
* close-ups whose top is out of the frame (the "no top visible" case);
* Blender's own HDRI environments (``datafiles/studiolights/world``) for lighting,
  reflections and a real-photo background, beside the background plates.

For each scene it writes one full frame (``images/NNNNNN.jpg``, ``--size`` on the
long side) and, for up to ``--crops`` tops in the frame, a close-up of the same
scene rendered through a render border at a higher resolution
(``crops/NNNNNN_K.jpg``; a square around the top, cut where it leaves the
frame): the judge's view of that top, as if the photo had been decoded at the
scale the crop needs. Rendering only the border costs a fraction of a full
frame at that resolution. One JSON line per scene in
``labels-START.jsonl`` holds every random choice and, per bottle, the top's box
and centre in the frame's pixels (origin top left), its label, whether it is in
the frame and whether another object hides it; per crop, the crop's box in the
frame and the top's box inside the crop.

The top's box is the same cylinder for both labels (lip radius plus 2 mm, from
10 mm below the lip to 2 mm above it), so its size says nothing about the cap.
"""

from __future__ import annotations

import argparse
import glob
import math
import random
import sys
from pathlib import Path

import bpy
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Euler, Matrix, Vector

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render_bottles as rb  # noqa: E402  (Blender's Python has no package context)

CLEAR_PET = [(0.95, 0.97, 0.97), (0.85, 0.93, 0.98), (0.8, 0.95, 0.85), (0.97, 0.95, 0.9)]
FAMILIES = dict(rb.FAMILIES)
FAMILIES["soda"] = dict(
    R=(0.028, 0.031), H=(0.10, 0.12), S=(0.05, 0.07), rn=(0.0115, 0.0125), L=(0.04, 0.06), glass=rb.CLEAR + rb.GREEN
)
FAMILIES["pet"] = dict(
    R=(0.032, 0.045), H=(0.10, 0.17), S=(0.04, 0.07), rn=(0.0125, 0.0135), L=(0.012, 0.02), glass=CLEAR_PET
)
PLASTIC_CAPS = [(0.05, 0.2, 0.7), (0.8, 0.05, 0.05), (0.95, 0.95, 0.95), (0.1, 0.5, 0.15), (0.95, 0.7, 0.05)]
FOIL = [(0.85, 0.7, 0.3), (0.8, 0.8, 0.82), (0.6, 0.05, 0.05), (0.05, 0.3, 0.1), (0.1, 0.1, 0.4)]
TOP_BELOW, TOP_ABOVE, TOP_MARGIN = 0.010, 0.002, 0.002  # the top's box: a cylinder around the lip


def parse_args() -> argparse.Namespace:
    parser = rb.shard_parser(seed=11, size=384, samples=24)
    parser.add_argument("--crops", type=int, default=2, help="close-ups rendered per scene (tops in the frame)")
    parser.add_argument("--crop-size", type=int, default=160, help="side of a close-up in pixels")
    parser.add_argument("--crop-span", type=float, default=3.0, help="close-up side in units of the top's box")
    return parser.parse_args(rb.script_argv())


def hdri_paths() -> list[str]:
    """Blender's bundled HDRI environments (city, courtyard, forest, interior, night, studio, ...)."""
    roots = [Path(bpy.utils.resource_path("LOCAL")), Path(bpy.utils.resource_path("SYSTEM"))]
    roots += [Path("/usr/share/blender")] + [Path(p) for p in glob.glob("/usr/share/blender/*")]
    for root in roots:
        found = sorted(glob.glob(str(root / "datafiles" / "studiolights" / "world" / "*.exr")))
        if found:
            return found
    return []


# ---------------------------------------------------------------- extra objects
def pet_details(rng: random.Random, p: rb.Profile, location: Vector, material) -> list:
    """The support ring and thread ridges of a PET neck finish."""
    ring_z = p.top - rng.uniform(0.016, 0.02)
    ring = [
        (p.rn, ring_z - 0.001),
        (p.rn + 0.0045, ring_z - 0.0008),
        (p.rn + 0.0045, ring_z + 0.0008),
        (p.rn, ring_z + 0.001),
    ]
    objs = [rb.lathe("support_ring", ring, material)]
    for k in range(2):
        z = p.top - 0.004 - 0.004 * k
        objs.append(rb.lathe("thread", [(p.lip_r, z - 0.0006), (p.lip_r + 0.0009, z), (p.lip_r, z + 0.0006)], material))
    for obj in objs:
        obj.location += location
    return objs


def plastic_cap(rng: random.Random, p: rb.Profile, tilt: float):
    cap = rb.twist_cap(rng, p, tilt)
    cap.scale = (1.08, 1.08, rng.uniform(1.2, 1.7))
    mat, _ = rb.principled("plastic_cap", rng.choice(PLASTIC_CAPS), roughness=rng.uniform(0.3, 0.6))
    cap.data.materials.clear()
    cap.data.materials.append(mat)
    return cap


def foil_wrap(rng: random.Random, p: rb.Profile, closed: bool):
    """Foil around the neck: over the cap when closed, torn off below the lip when open."""
    z0 = p.H + p.S * rng.uniform(0.4, 0.8)
    if closed:
        r_top = p.lip_r + 0.0025
        profile = [(p.radius(z) + 0.0007, z) for z in (z0, (z0 + p.top) / 2, p.top - 0.012)]
        profile += [
            (r_top, p.top - 0.004),
            (r_top, p.top + 0.001),
            (r_top * 0.7, p.top + 0.0035),
            (0.0005, p.top + 0.004),
        ]
    else:
        z1 = p.top - p.lip_h - rng.uniform(0.003, 0.012)
        profile = [(p.radius(z) + 0.0007, z) for z in (z0, (z0 + z1) / 2, z1)]
    if rng.random() < 0.4:
        mat = rb.procedural_art(rng, "foil", scale=(3.0, 12.0))
        mat.node_tree.nodes["Principled BSDF"].inputs["Metallic"].default_value = rng.uniform(0.6, 1.0)
    else:
        mat, _ = rb.principled("foil", rng.choice(FOIL), roughness=rng.uniform(0.15, 0.45), metallic=1.0)
    return rb.lathe("foil", profile, mat)


def loose_cap(rng: random.Random, location: Vector):
    """A crown cap lying on the table, crimps up or down: a cap that is not a bottle's top."""
    p = rb.Profile(rng, FAMILIES["longneck"])
    p.top = 0.0
    cap = rb.crown_cap(rng, p, 0.0)
    if rng.random() < 0.5:
        cap.rotation_euler = Euler((math.pi, 0, rng.uniform(0, 6.3)))
        cap.location = location + Vector((0, 0, 0.002))
    else:
        cap.location = location + Vector((0, 0, 0.0068))
    return cap


def crate(rng: random.Random, rows: int, cols: int, spacing: float, height: float) -> None:
    colour = rng.choice([(0.6, 0.05, 0.05), (0.05, 0.2, 0.5), (0.1, 0.1, 0.1), (0.9, 0.6, 0.05), (0.05, 0.35, 0.1)])
    mat, _ = rb.principled("crate", colour, roughness=rng.uniform(0.3, 0.7))
    half_x, half_y = cols * spacing / 2 + 0.01, rows * spacing / 2 + 0.01
    for sx, sy, lx, ly in (
        (1, 0, 0.004, half_y),
        (-1, 0, 0.004, half_y),
        (0, 1, half_x, 0.004),
        (0, -1, half_x, 0.004),
    ):
        bpy.ops.mesh.primitive_cube_add(size=1, location=(sx * half_x, sy * half_y, height / 2))
        wall = bpy.context.active_object
        wall.scale = (2 * lx, 2 * ly, height)
        wall.data.materials.append(mat)


def hdri_world(rng: random.Random, path: str) -> dict:
    world = bpy.data.worlds.new("world")
    bpy.context.scene.world = world
    world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    env = nodes.new("ShaderNodeTexEnvironment")
    env.image = bpy.data.images.load(path, check_existing=True)
    mapping = nodes.new("ShaderNodeMapping")
    coords = nodes.new("ShaderNodeTexCoord")
    links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
    mapping.inputs["Rotation"].default_value = (0, 0, rng.uniform(0, 2 * math.pi))
    links.new(mapping.outputs["Vector"], env.inputs["Vector"])
    links.new(env.outputs["Color"], nodes["Background"].inputs["Color"])
    strength = rng.uniform(0.4, 2.0)
    nodes["Background"].inputs["Strength"].default_value = strength
    return {"world": "hdri:" + Path(path).stem, "world_strength": round(strength, 2)}


# ---------------------------------------------------------------- bottles
def build_bottle(rng, label, family_name, glass_colour, fill, art, neck_art, location, beer, foil, extra):
    family = FAMILIES[family_name]
    p = rb.Profile(rng, family)
    is_pet = family_name == "pet"
    roughness = rng.choice([0.0, 0.02, 0.05, 0.1, 0.2])
    glass, _ = rb.principled("glass", glass_colour, roughness=roughness, transmission=1.0, ior=1.4 if is_pet else 1.5)
    liquid_colour = beer if not is_pet else rng.choice([beer, (0.9, 0.95, 1.0), (0.25, 0.08, 0.03), (0.9, 0.5, 0.1)])
    liquid, _ = rb.principled("liquid", liquid_colour, roughness=0.05, transmission=1.0, ior=1.33)
    foam, _ = rb.principled("foam", (0.95, 0.93, 0.85), roughness=0.8)
    objs = rb.bottle_meshes(p, glass, liquid, fill, foam)
    if art is not None:
        z0 = rng.uniform(0.15, 0.35) * p.H
        z1 = min(p.H * rng.uniform(0.7, 1.0), p.H)
        objs.append(rb.label_band(rng, p, art, z0, z1, wrap=rng.choice([0.5, 0.75, 1.0])))
    if neck_art is not None and not foil and not is_pet and rng.random() < 0.5:
        z0 = p.H + p.S * rng.uniform(0.5, 0.9)
        objs.append(rb.label_band(rng, p, neck_art, z0, z0 + rng.uniform(0.015, 0.03), wrap=1.0, name="neck"))
    tilt = math.radians(rng.uniform(-6, 6))
    info = {"label": label, "family": family_name}
    if foil:
        objs.append(foil_wrap(rng, p, closed=label == "closed"))
        info["foil"] = True
    if label == "closed":
        if is_pet:
            cap_kind = "plastic"
        elif family_name == "soda":
            cap_kind = "twist" if rng.random() < 0.7 else "crown"
        else:
            cap_kind = "twist" if rng.random() < 0.3 else "crown"
        if not foil:
            maker = {"plastic": plastic_cap, "twist": rb.twist_cap, "crown": rb.crown_cap}[cap_kind]
            objs.append(maker(rng, p, tilt))
        info["cap"] = cap_kind
    elif extra == "lime":
        objs.append(rb.lime_wedge(rng, p))
        info["extra"] = extra
    elif extra == "foam":
        objs.append(rb.foam_drop(p, foam))
        info["extra"] = extra
    for obj in objs:
        obj.location += location
    if is_pet:
        objs += pet_details(rng, p, location, glass)
    return p, info, objs


def layout(rng: random.Random, scene_kind: str) -> tuple[list[Vector], tuple[int, int] | None]:
    """Bottle positions for a scene kind (and the crate's rows and columns)."""
    if scene_kind == "single":
        return [Vector((0, 0, 0))], None
    if scene_kind == "pair":
        gap = rng.uniform(0.07, 0.14)
        return [Vector((-gap / 2, 0, 0)), Vector((gap / 2, rng.uniform(-0.04, 0.04), 0))], None
    if scene_kind == "line":
        count, spacing = rng.randint(3, 7), rng.uniform(0.07, 0.1)
        return [Vector(((k - (count - 1) / 2) * spacing, rng.uniform(-0.004, 0.004), 0)) for k in range(count)], None
    if scene_kind == "crate":
        spacing = 0.075
        rows, cols = rng.choice([(2, 3), (3, 4), (4, 5)])
        return [
            Vector(((c - (cols - 1) / 2) * spacing, (r - (rows - 1) / 2) * spacing, 0))
            for r in range(rows)
            for c in range(cols)
        ], (rows, cols)
    # table: a few bottles scattered, never touching
    spots: list[Vector] = []
    for _ in range(40):
        if len(spots) >= rng.randint(2, 5):
            break
        spot = Vector((rng.uniform(-0.18, 0.18), rng.uniform(-0.12, 0.12), 0))
        if all((spot - other).length > 0.075 for other in spots):
            spots.append(spot)
    return spots, None


# ---------------------------------------------------------------- camera and annotation
def project(scene, cam, point: Vector, width: int, height: int) -> tuple[float, float, float]:
    v = world_to_camera_view(scene, cam, point)
    return v.x * width, (1.0 - v.y) * height, v.z


def top_box(scene, cam, p: rb.Profile, frame: Matrix, width: int, height: int) -> dict:
    r = p.lip_r + TOP_MARGIN
    pts = []
    for z in (p.top - TOP_BELOW, p.top + TOP_ABOVE):
        for k in range(16):
            a = 2 * math.pi * k / 16
            pts.append(project(scene, cam, frame @ Vector((r * math.cos(a), r * math.sin(a), z)), width, height))
    xs, ys = [q[0] for q in pts], [q[1] for q in pts]
    cx, cy, depth = project(scene, cam, frame @ Vector((0, 0, p.top - TOP_BELOW / 2 + TOP_ABOVE / 2)), width, height)
    box = [min(xs), min(ys), max(xs), max(ys)]
    in_frame = depth > 0 and 0 <= cx < width and 0 <= cy < height
    return {
        "box": [round(v, 1) for v in box],
        "centre": [round(cx, 1), round(cy, 1)],
        "in_frame": bool(in_frame),
        "depth": round(depth, 3),
    }


def occluded(scene, cam, target: Vector, own: set[str]) -> bool:
    """Whether the first surface on the way from the camera to ``target`` belongs to another object."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    direction = target - cam.location
    hit, _loc, _normal, _index, obj, _matrix = scene.ray_cast(depsgraph, cam.location, direction.normalized())
    if not hit or obj is None:
        return False
    return obj.name not in own and (_loc - cam.location).length < direction.length - 0.015


def place_camera(rng, scene, cam, cam_data, main_p, frame, aspect, frame_fraction, aim_z, cam_height, cutoff):
    """Aim the camera; keep the main top inside the frame (or, for a cut-off close-up, outside it).

    ``frame`` places the main bottle (standing: a translation; lying: turned on its side);
    heights and aims are along the bottle's own axis.
    """
    main_loc = frame.to_translation()
    main_loc.z = 0.0
    fov = (
        2 * math.atan(18 / cam_data.lens)
        if aspect[0] >= aspect[1]
        else 2 * math.atan(18 * aspect[1] / aspect[0] / cam_data.lens)
    )
    distance = max(
        0.1,
        main_p.top
        / frame_fraction
        / (2 * math.tan(fov / 2))
        * (1 if aspect[1] >= aspect[0] else aspect[1] / aspect[0]),
    )
    azimuth = rng.uniform(0, 2 * math.pi)
    roll = 0.0
    for _attempt in range(16):
        aim_height = (frame @ Vector((0, 0, aim_z))).z  # aim_z is along the bottle, which may lie down
        horizontal = math.sqrt(max(distance**2 - (cam_height - aim_height) ** 2, 0.01))
        cam.location = main_loc + Vector((math.cos(azimuth) * horizontal, math.sin(azimuth) * horizontal, cam_height))
        spread = 0.3 if cutoff else 0.6
        aim = frame @ Vector((rng.uniform(-spread, spread) * main_p.R * 3, rng.uniform(-0.5, 0.5) * main_p.R, aim_z))
        roll = math.radians(rng.gauss(0, 8) if rng.random() < 0.85 else rng.uniform(-35, 35))
        cam.rotation_euler = (aim - cam.location).to_track_quat("-Z", "Y").to_euler()
        cam.rotation_euler.rotate_axis("Z", roll)
        bpy.context.view_layer.update()
        lip = [
            world_to_camera_view(scene, cam, frame @ Vector((dx, dy, main_p.top)))
            for dx, dy in ((main_p.lip_r, 0), (-main_p.lip_r, 0), (0, main_p.lip_r), (0, -main_p.lip_r))
        ]
        body = world_to_camera_view(scene, cam, frame @ Vector((0, 0, main_p.H * 0.6)))
        if cutoff:
            top_out = all(not (-0.05 < v.x < 1.05 and -0.05 < v.y < 1.05) for v in lip)
            if top_out and 0.1 < body.x < 0.9 and 0.1 < body.y < 0.9 and body.z > 0:
                return distance, roll, True
            aim_z *= 0.9
            distance *= 0.9
        else:
            neck = world_to_camera_view(scene, cam, frame @ Vector((0, 0, main_p.H + main_p.S)))
            if all(0.05 < v.x < 0.95 and 0.05 < v.y < 0.95 and v.z > 0 for v in lip + [neck]):
                return distance, roll, True
            aim_z = (aim_z + main_p.top) / 2
            distance *= 1.15
    return distance, roll, False


def setup_render(scene, samples: int) -> None:
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = samples
    cycles.use_adaptive_sampling = True
    cycles.adaptive_threshold = 0.08
    cycles.use_denoising = False
    cycles.max_bounces = 6
    cycles.transmission_bounces = 6
    cycles.glossy_bounces = 3
    cycles.diffuse_bounces = 2
    cycles.transparent_max_bounces = 4
    cycles.caustics_reflective = False
    cycles.caustics_refractive = False
    cycles.blur_glossy = 1.0
    cycles.sample_clamp_direct = 10.0  # no denoiser in Debian's build: clamp fireflies instead
    cycles.sample_clamp_indirect = 2.0
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = "JPEG"
    scene.render.image_settings.quality = 94


def render_crop(scene, path: Path, box: list[float], width: int, height: int, scale: float) -> None:
    """Render the part ``box`` (frame pixels) of the scene, ``scale`` times the frame's resolution."""
    render = scene.render
    render.resolution_x, render.resolution_y = max(1, round(width * scale)), max(1, round(height * scale))
    render.use_border, render.use_crop_to_border = True, True
    render.border_min_x, render.border_max_x = box[0] / width, box[2] / width
    render.border_min_y, render.border_max_y = 1 - box[3] / height, 1 - box[1] / height
    render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    render.use_border = False
    render.resolution_x, render.resolution_y = width, height


def render_one(index: int, args, backgrounds: list[Path], hdris: list[str]) -> dict:
    rng = random.Random(args.seed * 1_000_003 + index)
    random.seed(args.seed * 7_919 + index)
    rb.reset_scene()
    scene_kind = rng.choices(["single", "pair", "line", "crate", "table"], weights=[5, 2, 2, 1, 1.5])[0]
    cutoff = scene_kind in ("single", "pair") and rng.random() < 0.15
    family_name = rng.choices(list(FAMILIES), weights=[3, 1, 2, 2, 1.5, 2])[0]
    glass_colour = rng.choice(FAMILIES[family_name]["glass"])
    fill = 0.0 if rng.random() < 0.2 else (1.0 if rng.random() < 0.1 else rng.random())
    beer = rng.choice([(0.9, 0.55, 0.1), (0.8, 0.4, 0.05), (0.3, 0.12, 0.03), (0.95, 0.8, 0.3)])
    art = rb.procedural_art(rng, "art") if rng.random() < 0.85 else None
    neck_art = rb.procedural_art(rng, "neck_art") if rng.random() < 0.6 else None
    foil = family_name in ("longneck", "heineken", "soda") and rng.random() < 0.15
    night = rng.random() < 0.1

    spots, crate_shape = layout(rng, scene_kind)
    scene_label = "open" if rng.random() < 0.5 else "closed"
    mixed = len(spots) > 1 and rng.random() < 0.5
    # Real photos show bottles lying on a table (an empty one rolled over, a row on its side):
    # a quarter of the single, pair and table scenes lay their bottles down.
    lying = scene_kind in ("single", "pair", "table") and not cutoff and rng.random() < 0.25
    bottles = []
    for loc in spots:
        label = ("open" if rng.random() < 0.5 else "closed") if mixed else scene_label
        extra = (
            rng.choices([None, "lime", "foam"], weights=[90, 6, 4])[0] if label == "open" and len(spots) <= 2 else None
        )
        bottle_fill = min(1.0, max(0.0, fill + rng.uniform(-0.1, 0.1)))
        before = set(bpy.data.objects.keys())
        p, info, _objs = build_bottle(
            rng,
            label,
            family_name,
            glass_colour,
            bottle_fill,
            art,
            neck_art,
            Vector((0, 0, 0)) if lying else loc,
            beer,
            foil,
            extra,
        )
        made = set(bpy.data.objects.keys()) - before
        if lying:
            pivot = bpy.data.objects.new("lying", None)
            bpy.context.collection.objects.link(pivot)
            pivot.location = loc + Vector((0, 0, p.R))
            pivot.rotation_euler = Euler((math.pi / 2, 0, rng.uniform(0, 2 * math.pi)))
            for name in made:
                bpy.data.objects[name].parent = pivot
            bpy.context.view_layer.update()
            frame = pivot.matrix_world.copy()
            info["lying"] = True
        else:
            frame = Matrix.Translation(loc)
        bottles.append({"profile": p, "loc": loc, "frame": frame, "info": info, "objects": made})
    meta: dict = {
        "index": index,
        "scene": scene_kind,
        "family": family_name,
        "glass": glass_colour,
        "fill": round(fill, 3),
        "mixed": mixed,
        "cutoff": cutoff,
        "night": night,
        "lying": lying,
    }
    if crate_shape:
        crate(rng, *crate_shape, 0.075, bottles[0]["profile"].H * rng.uniform(0.5, 0.9))
    if any(b["info"]["label"] == "open" for b in bottles) and rng.random() < 0.25:
        p0 = bottles[0]["profile"]
        loose_cap(
            rng, spots[0] + Vector((rng.choice([-1, 1]) * rng.uniform(p0.R + 0.02, 0.09), rng.uniform(-0.05, 0.05), 0))
        )
        meta["loose_cap"] = True
    main = bottles[len(bottles) // 2] if scene_kind != "table" else rng.choice(bottles)
    main_p, main_loc, main_frame = main["profile"], main["loc"], main["frame"]
    if scene_kind == "single" and not lying and rng.random() < 0.25:
        rb.hand(rng, main_p, main_loc)
        meta["hand"] = True

    if hdris and rng.random() < 0.55:
        meta.update(hdri_world(rng, rng.choice(hdris)))
    else:
        meta.update(rb.setup_world(rng, backgrounds))
    if scene_kind != "single" or rng.random() < 0.75:
        rb.table(rng, backgrounds, "line" if scene_kind in ("line", "crate") else "studio")

    scene, cam, cam_data, aspect = rb.new_camera(rng, args.size, (22, 70))
    width, height = scene.render.resolution_x, scene.render.resolution_y
    scene.render.resolution_percentage = 100

    if cutoff:
        frame_fraction, aim_z = rng.uniform(1.6, 3.0), rng.uniform(0.25, 0.6) * main_p.H
        cam_height = rng.uniform(0.3, 1.0) * main_p.H
    elif scene_kind == "crate":
        frame_fraction, aim_z = rng.uniform(0.25, 0.6), main_p.top
        cam_height = main_p.top + rng.uniform(0.15, 0.5)
    elif scene_kind in ("line", "table"):
        frame_fraction, aim_z = rng.uniform(0.2, 0.7), rng.uniform(0.4, 1.0) * main_p.top
        cam_height = rng.uniform(main_p.H * 0.5, main_p.top + 0.3)
    else:
        # Phone photos are mostly close, but model 1's weak point was the small bottle:
        # a third of single shots show the whole bottle small in the frame.
        roll_size = rng.random()
        frame_fraction = rng.uniform(0.15, 0.45) if roll_size < 0.35 else rng.uniform(0.45, 1.6)
        aim_z = rng.uniform(main_p.H * 0.3, main_p.top)
        cam_height = rng.uniform(main_p.H * 0.5, main_p.top + 0.25)
    if lying:  # a bottle on its side: seen from a little above the table, or from well above
        cam_height = rng.uniform(0.04, 0.45)
    distance, roll, framed = place_camera(
        rng, scene, cam, cam_data, main_p, main_frame, aspect, frame_fraction, aim_z, cam_height, cutoff
    )
    meta.update(
        {
            "lens": round(cam_data.lens, 1),
            "distance": round(distance, 3),
            "roll_deg": round(math.degrees(roll), 1),
            "width": width,
            "height": height,
            "framed": framed,
        }
    )
    rb.depth_of_field(rng, cam, cam_data, main_frame @ Vector((0, 0, main_p.top)), 0.35, (1.8, 8.0), meta)

    facing = (main_loc - cam.location).normalized()
    facing.z *= 0.3
    if not night and not meta["world"].startswith("hdri") and rng.random() < 0.8:
        rb.backdrop(
            rng,
            backgrounds,
            rng.uniform(0.3, 2.0),
            rng.uniform(3, 6),
            main_loc + Vector((0, 0, main_p.top / 2)),
            facing.normalized(),
        )
    target = main_frame @ Vector((0, 0, main_p.top))
    lights = []
    for _ in range(rng.randint(1, 3)):
        behind = rng.random() < 0.2  # strong backlight: the bottle against the light
        pos = main_loc + (
            facing * rng.uniform(0.4, 1.0) if behind else Vector((rng.uniform(-1, 1), rng.uniform(-1, 1), 0))
        )
        pos.z = rng.uniform(0.1, 1.2)
        energy = rng.uniform(5, 80) * (0.3 if night else 1) * (3 if behind else 1)
        lights.append(round(rb.blackbody_light(rng, pos, target, rng.uniform(0.1, 1.5), energy), 0))
    meta["light_kelvin"] = lights
    if night:
        scene.world.node_tree.nodes["Background"].inputs["Strength"].default_value *= 0.1
    scene.view_settings.exposure = rng.uniform(-0.7, 0.9)
    setup_render(scene, args.samples)

    bpy.context.view_layer.update()
    tops = []
    for bottle in bottles:
        p, frame = bottle["profile"], bottle["frame"]
        ann = top_box(scene, cam, p, frame, width, height)
        ann.update(bottle["info"])
        centre = frame @ Vector((0, 0, p.top))
        ann["occluded"] = bool(ann["in_frame"] and occluded(scene, cam, centre, bottle["objects"]))
        tops.append(ann)
    meta["tops"] = tops
    visible = [t for t in tops if t["in_frame"] and not t["occluded"]]
    meta["label"] = "none" if not visible else ("open" if any(t["label"] == "open" for t in visible) else "closed")

    image_path = args.out / "images" / f"{index:06d}.jpg"
    scene.render.filepath = str(image_path)
    bpy.ops.render.render(write_still=True)
    meta["path"] = f"images/{image_path.name}"

    crops = []
    candidates = [k for k, t in enumerate(tops) if t["in_frame"] and not t["occluded"]]
    rng.shuffle(candidates)
    for k in candidates[: args.crops]:
        t = tops[k]
        x0, y0, x1, y1 = t["box"]
        size = max(x1 - x0, y1 - y0, 2.0)
        side = size * args.crop_span * rng.uniform(0.9, 1.15)
        cx = (x0 + x1) / 2 + rng.uniform(-0.15, 0.15) * size
        cy = (y0 + y1) / 2 + rng.uniform(-0.15, 0.15) * size
        # A square around the top, cut at the frame's edges as a crop of a real photo would be
        # (inference pads what lies outside the photo): the file holds only the part inside.
        box = [max(0.0, cx - side / 2), max(0.0, cy - side / 2), min(width, cx + side / 2), min(height, cy + side / 2)]
        crop_path = args.out / "crops" / f"{index:06d}_{k}.jpg"
        render_crop(scene, crop_path, box, width, height, args.crop_size / side)
        s = args.crop_size / side
        crops.append(
            {
                "path": f"crops/{crop_path.name}",
                "top": k,
                "label": t["label"],
                "crop_box": [round(v, 2) for v in box],
                "top_box_in_crop": [
                    round((x0 - box[0]) * s, 1),
                    round((y0 - box[1]) * s, 1),
                    round((x1 - box[0]) * s, 1),
                    round((y1 - box[1]) * s, 1),
                ],
            }
        )
    meta["crops"] = crops
    return meta


def main() -> None:
    args = parse_args()
    backgrounds = rb.background_plates(args.backgrounds)
    hdris = hdri_paths()
    print(f"[render] {len(hdris)} HDRI environments", flush=True)
    for sub in ("images", "crops"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)

    def describe(meta: dict) -> str:
        in_frame = sum(t["in_frame"] for t in meta["tops"])
        return f"{meta['scene']} {meta['label']} tops {in_frame}/{len(meta['tops'])}"

    rb.render_range(args, lambda index: render_one(index, args, backgrounds, hdris), describe)


if __name__ == "__main__":
    main()
