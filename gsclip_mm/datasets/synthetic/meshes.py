"""Mesh parts, materials and primitive helpers for the synthetic scenes.

An object is a list of ``Part`` s: a ``trimesh.Trimesh`` in the object's own
frame plus a ``Material``. The object frame is mmdetection3d's box frame for
SUN RGB-D: x points to the object's front (the heading, ``yaw``), y to its
left, z up, origin at the centre of the footprint on the floor (z = 0).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import trimesh

# Procedural texture kinds, evaluated per pixel on world positions (render.py).
TEX_PLAIN, TEX_WOOD, TEX_FABRIC, TEX_PLANKS, TEX_TILES, TEX_STRIPES, \
    TEX_CARPET = range(7)


@dataclass
class Material:
    """Surface look: base colour in [0, 1], texture kind, texture period (m)
    and the world axis (0, 1, 2) the texture runs along."""
    colour: np.ndarray  # [3]
    tex: int = TEX_PLAIN
    scale: float = 0.1
    axis: int = 0


@dataclass
class Part:
    mesh: trimesh.Trimesh
    material: Material
    # Set on a part that is annotated as an object of its own (a pillow on a
    # bed): the kind of that object (objects.KINDS); None for the builder's own.
    kind: Optional[str] = None


# Palettes overlap between classes on purpose: colour alone must not name
# the class (wood and white paint are on tables, desks, dressers, stands,
# shelves, beds and chairs; white ceramic also on white-painted furniture).
WOODS = np.array([[0.72, 0.55, 0.35], [0.42, 0.27, 0.16], [0.56, 0.30, 0.19],
                  [0.25, 0.17, 0.11], [0.84, 0.73, 0.56], [0.62, 0.45, 0.28]])
PAINTS = np.array([[0.92, 0.91, 0.88], [0.50, 0.50, 0.52], [0.14, 0.14, 0.15],
                   [0.32, 0.42, 0.55], [0.47, 0.56, 0.42], [0.80, 0.76, 0.68]])
FABRICS = np.array([[0.76, 0.70, 0.60], [0.45, 0.46, 0.48], [0.18, 0.24, 0.40],
                    [0.58, 0.18, 0.16], [0.38, 0.25, 0.17], [0.30, 0.45, 0.32],
                    [0.78, 0.62, 0.25], [0.88, 0.87, 0.84], [0.60, 0.55, 0.66]])
CERAMICS = np.array([[0.95, 0.95, 0.94], [0.93, 0.90, 0.82],
                     [0.80, 0.86, 0.90], [0.80, 0.80, 0.80],
                     [0.20, 0.20, 0.22]])
METALS = np.array([[0.72, 0.73, 0.75], [0.12, 0.12, 0.13],
                   [0.55, 0.50, 0.42]])
WALLS = np.array([[0.93, 0.91, 0.86], [0.86, 0.88, 0.87], [0.90, 0.84, 0.74],
                  [0.78, 0.83, 0.88], [0.84, 0.86, 0.78], [0.95, 0.95, 0.95]])


def jitter(rng: np.random.Generator, colour: Sequence[float],
           amount: float = 0.08) -> np.ndarray:
    """Colour times a random per-channel factor, clipped to [0, 1]."""
    c = np.asarray(colour, np.float64) * (1 + rng.uniform(-amount, amount, 3))
    return np.clip(c * rng.uniform(0.9, 1.1), 0.0, 1.0)


def pick(rng: np.random.Generator, palette: np.ndarray, tex: int = TEX_PLAIN,
         scale: float = 0.1, axis: int = 0) -> Material:
    """A jittered colour from a palette with the given texture."""
    return Material(jitter(rng, palette[rng.integers(len(palette))]), tex,
                    scale, axis)


def wood(rng: np.random.Generator, axis: int = 0) -> Material:
    """Wood grain (70%) or a painted finish (30%)."""
    if rng.random() < 0.7:
        return pick(rng, WOODS, TEX_WOOD, rng.uniform(0.02, 0.05), axis)
    return pick(rng, PAINTS, TEX_PLAIN)


def fabric(rng: np.random.Generator) -> Material:
    return pick(rng, FABRICS, TEX_FABRIC, rng.uniform(0.004, 0.01))


# trimesh's unit box, built once: trimesh.creation.box re-checks its face
# normals on every call, which was a third of a scene's time (rooms are tiled).
_BOX = trimesh.creation.box()
_BOX_VERTICES, _BOX_FACES = np.array(_BOX.vertices), np.array(_BOX.faces)


def box(centre: Sequence[float], extents: Sequence[float],
        mat: Material) -> Part:
    """Axis-aligned box part (object frame)."""
    v = _BOX_VERTICES * np.asarray(extents, np.float64) + np.asarray(centre, np.float64)
    return Part(trimesh.Trimesh(v, _BOX_FACES, process=False), mat)


def cylinder(centre: Sequence[float], radius: float, height: float,
             mat: Material, sections: int = 14, sx: float = 1.0,
             sy: float = 1.0, top_scale: float = 1.0) -> Part:
    """Upright (elliptic, optionally tapered) cylinder centred at ``centre``.

    ``sx``/``sy`` scale the section along x/y; ``top_scale`` shrinks or
    widens the top ring (a frustum, e.g. a toilet bowl or a lamp shade).
    """
    m = trimesh.creation.cylinder(radius=radius, height=height,
                                  sections=sections)
    v = m.vertices.copy()
    top = v[:, 2] > 0
    v[top, :2] *= top_scale
    v[:, 0] *= sx
    v[:, 1] *= sy
    m = trimesh.Trimesh(v + np.asarray(centre), m.faces, process=False)
    return Part(m, mat)


def ellipsoid(centre: Sequence[float], radii: Sequence[float],
              mat: Material) -> Part:
    """Ellipsoid (pillows, cushions, foliage), a scaled icosphere."""
    m = trimesh.creation.icosphere(subdivisions=2)
    m = trimesh.Trimesh(m.vertices * np.asarray(radii) + np.asarray(centre),
                        m.faces, process=False)
    return Part(m, mat)


def rotated(part: Part, angle: float, axis: Sequence[float],
            point: Sequence[float]) -> Part:
    """Part rotated by ``angle`` (rad) about ``axis`` through ``point``."""
    m = part.mesh.copy()
    m.apply_transform(trimesh.transformations.rotation_matrix(
        angle, axis, point))
    return Part(m, part.material, part.kind)


def parts_bounds(parts: List[Part]) -> np.ndarray:
    """[2, 3] min/max corner over all parts (object frame)."""
    v = np.concatenate([p.mesh.vertices for p in parts])
    return np.stack([v.min(0), v.max(0)])


def scaled(parts: List[Part], s: float) -> List[Part]:
    """Parts scaled by ``s`` about the object origin (stays on the floor)."""
    out = []
    for p in parts:
        m = p.mesh.copy()
        m.apply_scale(s)
        out.append(Part(m, p.material, p.kind))
    return out
