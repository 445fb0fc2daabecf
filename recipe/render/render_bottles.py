"""Render labelled photos of open and closed beer bottles with Blender (Cycles, CPU).

Run headless:

    blender -b -P recipe/render/render_bottles.py -- \
        --out /tmp/renders --backgrounds /tmp/bc-backgrounds --start 0 --count 2000 --seed 1

Each image ``i`` is built from its own random generator seeded with ``(seed, i)``, so
any image can be re-rendered alone and shards (``--start``/``--count``) can run in
parallel. The label decides one thing only: whether a cap sits on the lip (crown or
twist cap for ``closed``; a bare lip, sometimes with a lime wedge or foam, for
``open``). Everything else (bottle shape, glass, label artwork, fill level, camera,
light, background, a hand around the body, several bottles on a line) is drawn
independently of the label, so the only thing that predicts the label is the cap.

Writes ``OUT/{open,closed}/NNNNNN.jpg`` and one JSON line per image in
``OUT/labels-START.jsonl`` with every random choice, fill level included, so test
splits can be chosen against a nuisance (for example, full open bottles).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import bpy
from mathutils import Euler, Vector

SEGMENTS = 48

# Bottle families: (name, body radius, body height, shoulder, neck radius, neck length, glass colours)
AMBER = [(0.30, 0.12, 0.02), (0.40, 0.17, 0.03), (0.22, 0.08, 0.015)]
GREEN = [(0.05, 0.30, 0.06), (0.10, 0.35, 0.08), (0.03, 0.22, 0.05)]
CLEAR = [(0.92, 0.95, 0.92), (0.85, 0.92, 0.88), (0.95, 0.95, 0.95)]
FAMILIES = {
    "longneck": dict(
        R=(0.029, 0.032), H=(0.11, 0.13), S=(0.035, 0.05), rn=(0.0115, 0.0125), L=(0.05, 0.065), glass=AMBER + GREEN
    ),
    "stubby": dict(R=(0.031, 0.035), H=(0.075, 0.09), S=(0.02, 0.03), rn=(0.0125, 0.0135), L=(0.02, 0.03), glass=AMBER),
    "corona": dict(R=(0.027, 0.030), H=(0.12, 0.14), S=(0.06, 0.08), rn=(0.0115, 0.0125), L=(0.035, 0.05), glass=CLEAR),
    "heineken": dict(
        R=(0.029, 0.031), H=(0.10, 0.12), S=(0.05, 0.065), rn=(0.0115, 0.0125), L=(0.04, 0.055), glass=GREEN
    ),
}
CAP_COLOURS = [
    (0.8, 0.65, 0.2),
    (0.75, 0.75, 0.78),
    (0.7, 0.05, 0.05),
    (0.05, 0.15, 0.6),
    (0.02, 0.02, 0.02),
    (0.05, 0.4, 0.1),
    (0.9, 0.9, 0.88),
    (0.9, 0.5, 0.05),
    (0.4, 0.05, 0.4),
]
SKIN = [(0.87, 0.68, 0.55), (0.72, 0.5, 0.36), (0.45, 0.3, 0.2), (0.95, 0.78, 0.66), (0.3, 0.2, 0.14)]


def shard_parser(seed: int, size: int, samples: int) -> argparse.ArgumentParser:
    """The options every render script takes: where to, which scenes (a shard), and quality."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--backgrounds", type=Path, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--size", type=int, default=size, help="long side in pixels")
    parser.add_argument("--samples", type=int, default=samples)
    return parser


def script_argv() -> list[str]:
    """What follows ``--`` on Blender's command line (the script's own arguments)."""
    return sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []


def parse_args() -> argparse.Namespace:
    parser = shard_parser(seed=1, size=256, samples=16)
    parser.add_argument("--only", choices=["open", "closed"], help="render only the images of this label")
    return parser.parse_args(script_argv())


# ---------------------------------------------------------------- geometry
def smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3 - 2 * t)


class Profile:
    """Radius of the bottle's outer surface as a function of height."""

    def __init__(self, rng: random.Random, family: dict):
        u = rng.uniform
        self.R, self.H, self.S = u(*family["R"]), u(*family["H"]), u(*family["S"])
        self.rn, self.L = u(*family["rn"]), u(*family["L"])
        self.lip_r = self.rn + u(0.0012, 0.0022)
        self.lip_h = u(0.005, 0.008)
        self.top = self.H + self.S + self.L
        self.wall = 0.0022

    def radius(self, z: float) -> float:
        if z < self.H:
            return self.R
        if z < self.H + self.S:
            t = (z - self.H) / self.S
            return self.R + (self.rn - self.R) * smoothstep(t)
        if z < self.top - self.lip_h:
            return self.rn
        return self.lip_r

    def heights(self, z_max: float, steps: int = 40) -> list[float]:
        zs = [0.004 + (z_max - 0.004) * i / steps for i in range(steps + 1)]
        zs += [self.H, self.H + self.S, self.top - self.lip_h - 0.0005, self.top - self.lip_h]
        return sorted(z for z in set(zs) if z <= z_max)


def lathe(name: str, profile: list[tuple[float, float]], material, segments: int = SEGMENTS):
    """Revolve (radius, z) points around the z axis into a smooth mesh object."""
    verts, faces = [], []
    for r, z in profile:
        for s in range(segments):
            a = 2 * math.pi * s / segments
            verts.append((r * math.cos(a), r * math.sin(a), z))
    for i in range(len(profile) - 1):
        for s in range(segments):
            a, b = i * segments + s, i * segments + (s + 1) % segments
            faces.append((a, b, b + segments, a + segments))
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    mesh.update()
    for polygon in mesh.polygons:
        polygon.use_smooth = True
    obj = bpy.data.objects.new(name, mesh)
    obj.data.materials.append(material)
    bpy.context.collection.objects.link(obj)
    return obj


def bottle_meshes(p: Profile, glass, liquid, fill: float, foam_mat):
    outer = [(p.radius(z), z) for z in p.heights(p.top - 0.0008)]
    rim = [(p.lip_r - 0.0006, p.top), (p.rn - p.wall + 0.0004, p.top)]
    inner_zs = [z for z in reversed(p.heights(p.top - 0.001)) if z > 0.005]
    inner = [(max(p.radius(min(z, p.top - p.lip_h - 0.001)) - p.wall, 0.002), z) for z in inner_zs]
    shape = [(0.0005, 0.0)] + outer + rim + inner + [(0.0005, 0.005)]
    parts = [lathe("glass", shape, glass)]
    if fill > 0.0:
        z_fill = 0.007 + fill * (p.top - 0.03 - 0.007)
        zs = [z for z in p.heights(z_fill) if z > 0.006] + [z_fill]
        body = [(p.radius(z) - p.wall - 0.0006, z) for z in sorted(set(zs))]
        liquid_profile = [(0.0005, 0.006)] + body + [(0.0005, z_fill)]
        parts.append(lathe("liquid", liquid_profile, liquid))
        if random.random() < 0.5:
            r_top = p.radius(z_fill) - p.wall - 0.0006
            head = [(r_top, z_fill), (r_top, z_fill + 0.006), (0.0005, z_fill + 0.007)]
            parts.append(lathe("head", head, foam_mat))
    return parts


# ---------------------------------------------------------------- materials
def principled(name: str, colour, roughness=0.5, metallic=0.0, transmission=0.0, ior=1.45):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = metallic
    bsdf.inputs["Transmission"].default_value = transmission
    bsdf.inputs["IOR"].default_value = ior
    return mat, bsdf


def procedural_art(rng: random.Random, name: str, bsdf_target=None, scale=(8.0, 20.0)):
    """A label-like material: two to three colours mixed by a random texture."""
    mat, bsdf = principled(name, (1, 1, 1), roughness=rng.uniform(0.2, 0.7), metallic=rng.choice([0, 0, 0, 0.6]))
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    kind = rng.choice(
        [
            "ShaderNodeTexNoise",
            "ShaderNodeTexWave",
            "ShaderNodeTexVoronoi",
            "ShaderNodeTexChecker",
            "ShaderNodeTexBrick",
            "ShaderNodeTexMagic",
        ]
    )
    tex = nodes.new(kind)
    if "Scale" in tex.inputs:
        tex.inputs["Scale"].default_value = rng.uniform(*scale)
    ramp = nodes.new("ShaderNodeValToRGB")
    elements = ramp.color_ramp.elements
    elements[0].color = (*[rng.random() for _ in range(3)], 1)
    elements[1].color = (*[rng.random() for _ in range(3)], 1)
    elements[0].position, elements[1].position = rng.uniform(0.2, 0.5), rng.uniform(0.5, 0.8)
    if rng.random() < 0.5:
        mid = elements.new(rng.uniform(0.45, 0.55))
        mid.color = (*[rng.random() for _ in range(3)], 1)
    ramp.color_ramp.interpolation = rng.choice(["CONSTANT", "LINEAR"])
    output = tex.outputs["Fac"] if "Fac" in tex.outputs else tex.outputs[0]
    links.new(output, ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def image_material(name: str, path: Path, emission: float = 0.0):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = bpy.data.images.load(str(path), check_existing=True)
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.8
    if emission > 0:
        links.new(tex.outputs["Color"], bsdf.inputs["Emission"])
        bsdf.inputs["Emission Strength"].default_value = emission
    return mat


# ---------------------------------------------------------------- caps and extras
def crown_cap(rng: random.Random, p: Profile, tilt: float):
    r = p.lip_r + rng.uniform(0.0012, 0.002)
    h = rng.uniform(0.005, 0.0065)
    flutes = 21
    verts, faces = [], []
    # Vertices are relative to the lip top and the object sits there, so the tilt pivots on
    # the lip (pivoting on the bottle's base would slide the cap a centimetre off the lip).
    rings = [
        (r * 1.06, -h),
        (r, -h * 0.55),
        (r * 0.98, 0.0012),
        (r * 0.6, 0.0018),
        (0.0005, 0.002),
    ]
    n = flutes * 4
    for k, (rr, z) in enumerate(rings):
        for s in range(n):
            a = 2 * math.pi * s / n
            crimp = 1.0 + (0.06 * math.cos(a * flutes) if k < 2 else 0.0)
            verts.append((rr * crimp * math.cos(a), rr * crimp * math.sin(a), z))
    for i in range(len(rings) - 1):
        for s in range(n):
            a, b = i * n + s, i * n + (s + 1) % n
            faces.append((a, b, b + n, a + n))
    mesh = bpy.data.meshes.new("crown")
    mesh.from_pydata(verts, [], faces)
    for polygon in mesh.polygons:
        polygon.use_smooth = True
    obj = bpy.data.objects.new("crown", mesh)
    bpy.context.collection.objects.link(obj)
    colour = rng.choice(CAP_COLOURS)
    if rng.random() < 0.5:
        mat = procedural_art(rng, "cap_logo", scale=(2.0, 6.0))
        mat.node_tree.nodes["Principled BSDF"].inputs["Metallic"].default_value = rng.uniform(0.3, 0.9)
    else:
        mat, _ = principled("cap", colour, roughness=rng.uniform(0.15, 0.5), metallic=rng.uniform(0.5, 1.0))
    obj.data.materials.append(mat)
    obj.rotation_euler = Euler((tilt, 0, rng.uniform(0, 6.3)))
    obj.location.z = p.top
    return obj


def twist_cap(rng: random.Random, p: Profile, tilt: float):
    r = p.lip_r + rng.uniform(0.0008, 0.0015)
    h = rng.uniform(0.008, 0.012)
    ridges = 60
    profile_rings = [(r, -h), (r, 0.0), (r * 0.95, 0.0015), (0.0005, 0.0016)]
    n = ridges * 2
    verts, faces = [], []
    for k, (rr, z) in enumerate(profile_rings):
        for s in range(n):
            a = 2 * math.pi * s / n
            ridge = 1.0 + (0.02 * (s % 2) if k < 2 else 0.0)
            verts.append((rr * ridge * math.cos(a), rr * ridge * math.sin(a), z))
    for i in range(len(profile_rings) - 1):
        for s in range(n):
            a, b = i * n + s, i * n + (s + 1) % n
            faces.append((a, b, b + n, a + n))
    mesh = bpy.data.meshes.new("twist")
    mesh.from_pydata(verts, [], faces)
    obj = bpy.data.objects.new("twist", mesh)
    bpy.context.collection.objects.link(obj)
    mat, _ = principled(
        "twist", rng.choice(CAP_COLOURS), roughness=rng.uniform(0.2, 0.6), metallic=rng.uniform(0.4, 1.0)
    )
    obj.data.materials.append(mat)
    obj.rotation_euler = Euler((tilt, 0, 0))
    obj.location.z = p.top  # pivot on the lip, as for the crown cap
    return obj


def lime_wedge(rng: random.Random, p: Profile):
    """A lime wedge pushed into the neck and standing up beside the lip, as served."""
    bpy.ops.mesh.primitive_cylinder_add(
        vertices=24, radius=rng.uniform(0.016, 0.022), depth=0.012, location=(p.lip_r * 0.6, 0, p.top + 0.006)
    )
    obj = bpy.context.active_object
    obj.scale = (1.0, 0.45, 1.0)
    obj.rotation_euler = Euler((math.radians(90), math.radians(rng.uniform(-25, 25)), rng.uniform(0, 6.3)))
    mat, _ = principled("lime", (0.35, 0.7, 0.1), roughness=0.4, transmission=0.2)
    obj.data.materials.append(mat)
    return obj


def foam_drop(p: Profile, foam_mat):
    """A bead of foam running down from the lip: small, off to one side, never a lid."""
    bpy.ops.mesh.primitive_uv_sphere_add(radius=p.lip_r * 0.35, location=(p.lip_r * 0.9, 0, p.top - 0.004))
    obj = bpy.context.active_object
    obj.scale = (0.6, 0.8, 1.6)
    obj.data.materials.append(foam_mat)
    return obj


def label_band(rng: random.Random, p: Profile, art, z0: float, z1: float, wrap: float, name="label"):
    zs = [z0 + (z1 - z0) * i / 8 for i in range(9)]
    segs = max(8, int(SEGMENTS * wrap))
    verts, faces = [], []
    for z in zs:
        r = p.radius(z) + 0.0004
        for s in range(segs + 1):
            a = wrap * 2 * math.pi * s / segs
            verts.append((r * math.cos(a), r * math.sin(a), z))
    for i in range(len(zs) - 1):
        for s in range(segs):
            a = i * (segs + 1) + s
            faces.append((a, a + 1, a + segs + 2, a + segs + 1))
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    for polygon in mesh.polygons:
        polygon.use_smooth = True
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.collection.objects.link(obj)
    obj.data.materials.append(art)
    obj.rotation_euler.z = rng.uniform(0, 6.3)
    return obj


def hand(rng: random.Random, p: Profile, parent_loc: Vector):
    """Four fingers and a thumb wrapped around the body: a partial occluder."""
    skin, _ = principled("skin", rng.choice(SKIN), roughness=0.55)
    z = rng.uniform(0.3, 0.75) * p.H
    side = rng.uniform(0, 2 * math.pi)
    objs = []
    for k in range(4):
        bpy.ops.mesh.primitive_uv_sphere_add(radius=0.009, location=(0, 0, 0))
        finger = bpy.context.active_object
        finger.scale = (1.0, 1.0, 2.2)
        a = side + math.radians(-35 + 25 * k)
        finger.location = parent_loc + Vector(
            (math.cos(a) * (p.R + 0.006), math.sin(a) * (p.R + 0.006), z - 0.02 * k + 0.03)
        )
        finger.rotation_euler = Euler((0, math.radians(90), a + math.pi / 2))
        finger.data.materials.append(skin)
        objs.append(finger)
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.03, location=(0, 0, 0))
    palm = bpy.context.active_object
    palm.scale = (0.6, 1.0, 1.6)
    a = side + math.pi * 0.85
    palm.location = parent_loc + Vector((math.cos(a) * (p.R + 0.018), math.sin(a) * (p.R + 0.018), z))
    palm.rotation_euler.z = a
    palm.data.materials.append(skin)
    objs.append(palm)
    return objs


# ---------------------------------------------------------------- scene
def reset_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    for block in (
        bpy.data.meshes,
        bpy.data.materials,
        bpy.data.images,
        bpy.data.lights,
        bpy.data.cameras,
        bpy.data.worlds,
    ):
        for item in list(block):
            block.remove(item)


def blackbody_light(rng: random.Random, location: Vector, target: Vector, size: float, energy: float):
    light_data = bpy.data.lights.new("area", type="AREA")
    light_data.size = size
    light_data.energy = energy
    kelvin = rng.uniform(2600, 9000)
    light_data.use_nodes = True
    nodes = light_data.node_tree.nodes
    bb = nodes.new("ShaderNodeBlackbody")
    bb.inputs["Temperature"].default_value = kelvin
    light_data.node_tree.links.new(bb.outputs["Color"], nodes["Emission"].inputs["Color"])
    light = bpy.data.objects.new("area", light_data)
    light.location = location
    direction = target - location
    light.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    bpy.context.collection.objects.link(light)
    return kelvin


def setup_world(rng: random.Random, backgrounds: list[Path]):
    world = bpy.data.worlds.new("world")
    bpy.context.scene.world = world
    world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = nodes["Background"]
    strength = rng.uniform(0.2, 1.6)
    background.inputs["Strength"].default_value = strength
    if rng.random() < 0.6:
        env = nodes.new("ShaderNodeTexEnvironment")
        env.image = bpy.data.images.load(str(rng.choice(backgrounds)), check_existing=True)
        links.new(env.outputs["Color"], background.inputs["Color"])
        kind = "photo"
    else:
        sky = nodes.new("ShaderNodeTexNoise")
        sky.inputs["Scale"].default_value = rng.uniform(0.5, 3.0)
        ramp = nodes.new("ShaderNodeValToRGB")
        ramp.color_ramp.elements[0].color = (*[rng.random() for _ in range(3)], 1)
        ramp.color_ramp.elements[1].color = (*[rng.random() for _ in range(3)], 1)
        links.new(sky.outputs["Fac"], ramp.inputs["Fac"])
        links.new(ramp.outputs["Color"], background.inputs["Color"])
        kind = "procedural"
    return {"world": kind, "world_strength": strength}


def backdrop(rng: random.Random, backgrounds: list[Path], distance: float, size: float, center: Vector, facing: Vector):
    bpy.ops.mesh.primitive_plane_add(size=size, location=center + facing * distance)
    plane = bpy.context.active_object
    plane.rotation_euler = (-facing).to_track_quat("Z", "Y").to_euler()
    if rng.random() < 0.75:
        plane.data.materials.append(image_material("plate", rng.choice(backgrounds), emission=rng.uniform(0.0, 1.0)))
    else:
        plane.data.materials.append(procedural_art(rng, "wall", scale=(1.0, 8.0)))
    return plane


def table(rng: random.Random, backgrounds: list[Path], kind: str):
    bpy.ops.mesh.primitive_plane_add(size=4.0, location=(0, 0, 0))
    plane = bpy.context.active_object
    if kind == "line":
        mat, _ = principled(
            "belt", (rng.uniform(0.02, 0.2),) * 3, roughness=rng.uniform(0.3, 0.8), metallic=rng.uniform(0, 0.8)
        )
    elif rng.random() < 0.4:
        mat = image_material("tabletop", rng.choice(backgrounds))
    else:
        mat = procedural_art(rng, "tabletop", scale=(2.0, 30.0))
    plane.data.materials.append(mat)
    return plane


def build_bottle(
    rng: random.Random,
    label: str,
    family_name: str,
    glass_colour,
    fill: float,
    art,
    neck_art,
    location: Vector,
    shared: dict,
):
    family = FAMILIES[family_name]
    p = Profile(rng, family)
    roughness = rng.choice([0.0, 0.02, 0.05, 0.1, 0.2])
    glass, _ = principled("glass", glass_colour, roughness=roughness, transmission=1.0, ior=1.5)
    liquid, _ = principled("beer", shared["beer"], roughness=0.05, transmission=1.0, ior=1.33)
    foam, _ = principled("foam", (0.95, 0.93, 0.85), roughness=0.8)
    objs = bottle_meshes(p, glass, liquid, fill, foam)
    info = {"family": family_name, "glass": glass_colour, "glass_roughness": roughness}
    if art is not None:
        z0 = rng.uniform(0.15, 0.35) * p.H
        z1 = min(p.H * rng.uniform(0.7, 1.0), p.H)
        objs.append(label_band(rng, p, art, z0, z1, wrap=rng.choice([0.5, 0.75, 1.0])))
    if neck_art is not None and rng.random() < 0.5:
        z0 = p.H + p.S * rng.uniform(0.5, 0.9)
        objs.append(label_band(rng, p, neck_art, z0, z0 + rng.uniform(0.015, 0.03), wrap=1.0, name="neck"))
    tilt = math.radians(rng.uniform(-6, 6))
    if label == "closed":
        cap_kind = "twist" if rng.random() < 0.3 else "crown"
        objs.append((twist_cap if cap_kind == "twist" else crown_cap)(rng, p, tilt))
        info["cap"] = cap_kind
    else:
        extra = shared["open_extra"]
        if extra == "lime":
            objs.append(lime_wedge(rng, p))
        elif extra == "foam":
            objs.append(foam_drop(p, foam))
        if extra:
            info["extra"] = extra
    for obj in objs:
        obj.location += location
    return p, info


def render_one(index: int, args, backgrounds: list[Path]) -> dict:
    rng = random.Random(args.seed * 1_000_003 + index)
    random.seed(args.seed * 7_919 + index)
    label = "open" if rng.random() < 0.5 else "closed"
    if args.only and label != args.only:
        return None  # the same index renders the same image with or without --only
    reset_scene()
    scene_kind = rng.choices(["studio", "everyday", "line", "night"], weights=[3, 4, 2, 1])[0]
    family_name = rng.choices(list(FAMILIES), weights=[3, 1, 3, 2])[0]
    glass_colour = rng.choice(FAMILIES[family_name]["glass"])
    fill = 0.0 if rng.random() < 0.2 else (1.0 if rng.random() < 0.1 else rng.random())
    beer = rng.choice([(0.9, 0.55, 0.1), (0.8, 0.4, 0.05), (0.3, 0.12, 0.03), (0.95, 0.8, 0.3)])
    art = procedural_art(rng, "art") if rng.random() < 0.85 else None
    neck_art = procedural_art(rng, "neck_art") if rng.random() < 0.6 else None

    count = rng.randint(3, 7) if scene_kind == "line" else (rng.choice([1, 1, 1, 2]) if scene_kind != "night" else 1)
    spacing = rng.uniform(0.07, 0.1)
    open_extra = None
    if label == "open" and count == 1:
        open_extra = rng.choices([None, "lime", "foam"], weights=[90, 6, 4])[0]
    meta = {"index": index, "label": label, "scene": scene_kind, "fill": round(fill, 3), "bottles": count}
    profiles = []
    for k in range(count):
        loc = Vector(
            (
                (k - (count - 1) / 2) * spacing,
                rng.uniform(-0.004, 0.004) if scene_kind == "line" else rng.uniform(-0.03, 0.03) * k,
                0,
            )
        )
        bottle_fill = fill if scene_kind != "line" else min(1.0, max(0.0, fill + rng.uniform(-0.05, 0.05)))
        p, info = build_bottle(
            rng,
            label,
            family_name,
            glass_colour,
            bottle_fill,
            art,
            neck_art,
            loc,
            {"beer": beer, "open_extra": open_extra},
        )
        profiles.append((p, loc))
        if k == 0:
            meta.update(info)
    main_p, main_loc = profiles[len(profiles) // 2]
    if scene_kind in ("everyday", "studio") and count == 1 and rng.random() < 0.2:
        hand(rng, main_p, main_loc)
        meta["hand"] = True

    meta.update(setup_world(rng, backgrounds))
    if scene_kind != "everyday" or rng.random() < 0.7:
        table(rng, backgrounds, scene_kind)

    # camera
    scene, cam, cam_data, aspect = new_camera(rng, args.size, (22, 85))
    top = main_loc + Vector((0, 0, main_p.top + 0.003))
    height_total = main_p.top
    azimuth = rng.uniform(0, 2 * math.pi)
    cam_height = rng.uniform(main_p.H * 0.5, main_p.top + 0.25)  # below the shoulder .. looking down the neck
    aim_z = rng.uniform(main_p.H * 0.3, main_p.top)
    fov = (
        2 * math.atan(18 / cam_data.lens)
        if aspect[0] >= aspect[1]
        else 2 * math.atan(18 * aspect[1] / aspect[0] / cam_data.lens)
    )
    # How much of the frame's height the bottle fills. Phone photos are mostly close:
    # the bottle fills half the frame or more, and one in five is a close-up of the
    # neck (the body runs out of the frame; the top never does).
    if scene_kind == "line":
        frame_fraction = rng.uniform(0.3, 0.8)
    elif rng.random() < 0.2:
        frame_fraction = rng.uniform(1.1, 1.8)
    else:
        frame_fraction = rng.uniform(0.45, 1.0)
    distance = max(
        0.12,
        height_total
        / frame_fraction
        / (2 * math.tan(fov / 2))
        * (1 if aspect[1] >= aspect[0] else aspect[1] / aspect[0]),
    )
    from bpy_extras.object_utils import world_to_camera_view

    for _attempt in range(12):
        horizontal = math.sqrt(max(distance**2 - (cam_height - aim_z) ** 2, 0.01))
        cam.location = main_loc + Vector((math.cos(azimuth) * horizontal, math.sin(azimuth) * horizontal, cam_height))
        aim = main_loc + Vector((rng.uniform(-0.6, 0.6) * main_p.R * 3, rng.uniform(-0.5, 0.5) * main_p.R, aim_z))
        look = aim - cam.location
        roll = math.radians(rng.gauss(0, 8) if rng.random() < 0.85 else rng.uniform(-35, 35))
        cam.rotation_euler = look.to_track_quat("-Z", "Y").to_euler()
        cam.rotation_euler.rotate_axis("Z", roll)
        bpy.context.view_layer.update()
        points = [
            top + Vector((dx, dy, 0))
            for dx, dy in ((main_p.lip_r, 0), (-main_p.lip_r, 0), (0, main_p.lip_r), (0, -main_p.lip_r))
        ]
        points.append(main_loc + Vector((0, 0, main_p.H + main_p.S)))
        projected = [world_to_camera_view(scene, cam, pt) for pt in points]
        if all(0.05 < v.x < 0.95 and 0.05 < v.y < 0.95 and v.z > 0 for v in projected):
            break
        aim_z = (aim_z + main_p.top) / 2
        distance *= 1.15
    meta.update(
        {
            "lens": round(cam_data.lens, 1),
            "distance": round(distance, 3),
            "cam_height": round(cam_height, 3),
            "roll_deg": round(math.degrees(roll), 1),
            "aspect": f"{aspect[0]}:{aspect[1]}",
        }
    )

    depth_of_field(rng, cam, cam_data, top, 0.4, (1.4, 8.0), meta)

    facing = (main_loc - cam.location).normalized()
    facing.z *= 0.3
    if scene_kind != "night" and rng.random() < 0.8:
        backdrop(
            rng,
            backgrounds,
            rng.uniform(0.3, 2.0),
            rng.uniform(3, 6),
            main_loc + Vector((0, 0, main_p.top / 2)),
            facing.normalized(),
        )
    if scene_kind == "night":
        for _ in range(rng.randint(6, 20)):
            bpy.ops.mesh.primitive_uv_sphere_add(
                radius=rng.uniform(0.005, 0.03),
                location=main_loc
                + facing.normalized() * rng.uniform(0.6, 2.5)
                + Vector((rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0, 0.8))),
            )
            mat = bpy.data.materials.new("lamp")
            mat.use_nodes = True
            emission = mat.node_tree.nodes.new("ShaderNodeEmission")
            emission.inputs["Color"].default_value = (rng.random(), rng.random(), rng.random(), 1)
            emission.inputs["Strength"].default_value = rng.uniform(5, 40)
            mat.node_tree.links.new(emission.outputs[0], mat.node_tree.nodes["Material Output"].inputs["Surface"])
            bpy.context.active_object.data.materials.append(mat)
        bpy.context.scene.world.node_tree.nodes["Background"].inputs["Strength"].default_value *= 0.1

    kelvins = []
    for _ in range(rng.randint(1, 3)):
        light_pos = main_loc + Vector((rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.1, 1.2)))
        kelvins.append(
            round(
                blackbody_light(
                    rng,
                    light_pos,
                    top,
                    rng.uniform(0.1, 1.5),
                    rng.uniform(5, 80) * (0.3 if scene_kind == "night" else 1),
                ),
                0,
            )
        )
    meta["light_kelvin"] = kelvins

    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = args.samples
    scene.cycles.use_adaptive_sampling = True
    scene.cycles.adaptive_threshold = 0.08
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 6
    scene.cycles.transmission_bounces = 6
    scene.cycles.glossy_bounces = 3
    scene.cycles.diffuse_bounces = 2
    scene.cycles.transparent_max_bounces = 4
    scene.cycles.caustics_reflective = False
    scene.cycles.caustics_refractive = False
    scene.cycles.blur_glossy = 1.0
    scene.cycles.sample_clamp_indirect = 5.0
    render.film_transparent = False
    scene.view_settings.exposure = rng.uniform(-0.7, 0.9)
    render.image_settings.file_format = "JPEG"
    render.image_settings.quality = 94
    out_path = args.out / label / f"{index:06d}.jpg"
    render.filepath = str(out_path)
    bpy.ops.render.render(write_still=True)
    meta["path"] = f"{label}/{out_path.name}"
    return meta


def background_plates(folder: Path) -> list[Path]:
    """The photos ``make_backgrounds.py`` wrote (or any folder of JPEG/PNG plates)."""
    plates = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not plates:
        raise SystemExit(f"no background images in {folder}")
    return plates


def new_camera(rng: random.Random, size: int, lens_range: tuple[float, float]):
    """A camera with a random lens and frame shape (long side ``size`` px), made the scene's camera."""
    scene = bpy.context.scene
    cam_data = bpy.data.cameras.new("camera")
    cam_data.lens = rng.uniform(*lens_range)
    cam_data.sensor_width = 36
    cam = bpy.data.objects.new("camera", cam_data)
    bpy.context.collection.objects.link(cam)
    scene.camera = cam
    aspect = rng.choices([(3, 4), (1, 1), (4, 3), (9, 16)], weights=[4, 2, 3, 1])[0]
    scale = size / max(aspect)
    scene.render.resolution_x = int(aspect[0] * scale)
    scene.render.resolution_y = int(aspect[1] * scale)
    return scene, cam, cam_data, aspect


def depth_of_field(rng: random.Random, cam, cam_data, focus: Vector, chance: float, fstops, meta: dict) -> None:
    """Now and then a shallow focus on ``focus``, as a phone's portrait mode or a fast lens gives."""
    if rng.random() < chance:
        cam_data.dof.use_dof = True
        cam_data.dof.focus_distance = (focus - cam.location).length
        cam_data.dof.aperture_fstop = rng.uniform(*fstops)
        meta["dof_fstop"] = round(cam_data.dof.aperture_fstop, 2)


def render_range(args: argparse.Namespace, render, describe) -> None:
    """Render scenes ``args.start`` .. ``start + count - 1``, one JSON line each in ``labels-START.jsonl``.

    Resumable: indices already in the log are skipped, so a killed shard starts where it stopped.
    ``render(index)`` returns the scene's record (or None to skip it); ``describe(record)`` the
    progress line's middle.
    """
    log_path = args.out / f"labels-{args.start:06d}.jsonl"
    done = set()
    if log_path.exists():
        done = {json.loads(line)["index"] for line in log_path.read_text().splitlines() if line.strip()}
    with log_path.open("a") as log:
        for index in range(args.start, args.start + args.count):
            if index in done:
                continue
            started = time.time()
            meta = render(index)
            if meta is None:
                continue
            meta["seconds"] = round(time.time() - started, 2)
            log.write(json.dumps(meta) + "\n")
            log.flush()
            print(f"[render] {index} {describe(meta)} {meta['seconds']}s", flush=True)


def main() -> None:
    args = parse_args()
    backgrounds = background_plates(args.backgrounds)
    for label in ("open", "closed"):
        (args.out / label).mkdir(parents=True, exist_ok=True)
    render_range(args, lambda index: render_one(index, args, backgrounds), lambda m: f"{m['label']} {m['scene']}")


if __name__ == "__main__":
    main()
