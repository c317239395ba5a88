"""Scene composition, camera and one-view capture (RGB + noisy depth points).

Coordinates follow mmdetection3d's SUN RGB-D depth frame: the camera sits at
the origin, z is up, the camera looks roughly along +y (pitched down, a
little rolled), and ``depth2img = K @ A @ Rtilt.T`` with ``A`` the axis change
(x, y, z) -> (x, -z, y), computed by the converter's own function from the
float32 ``K`` and ``Rtilt`` that the calib file holds, so the camera the
scene is rendered with is the one the converted infos carry.
A room is laid out in its own frame and turned by a random yaw about the
camera, so objects face every direction in the depth frame.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import trimesh

from ..converters.sunrgbd import depth2img_matrix
from .meshes import (TEX_CARPET, TEX_PLAIN, TEX_PLANKS, TEX_TILES, WALLS, WOODS, Material, Part, box, jitter,
                     parts_bounds, pick, scaled)
from .objects import BUILDERS, CLUTTER, EXTRA_CLASSES, KINDS, raw_name
from .render import backproject, rasterize, shade, texture

AXES = np.array([[1., 0., 0.], [0., 0., -1.], [0., 1., 0.]])  # depth->camera
BOX_MARGIN = 0.02  # metres added around the mesh bounds (sides and top)
OBJECT_SCALE = (0.85, 1.18)  # isotropic scale range applied to every object
FLOOR_CLEARANCE = 0.02  # box bottom above what the object stands on: keeps its points out
WALL_CLEARANCE = 0.03  # footprints this far from the walls: the grown box stays clear of wall points

# Which room a scene whose primary class is the key may be; and what else
# the room holds (kind, probability): the test classes first, then the extra
# classes (placed after all test classes, so they never take their room).
PRIMARY_ROOMS = dict(
    bed=('bedroom',), night_stand=('bedroom',), dresser=('bedroom', 'living'),
    sofa=('living',), table=('dining', 'living'), chair=('dining', 'office'),
    desk=('office', 'bedroom'), bookshelf=('office', 'living'),
    toilet=('bathroom',), bathtub=('bathroom',))
ROOM_EXTRAS = dict(
    bedroom=(('bed', 0.9), ('night_stand', 0.8), ('night_stand', 0.5),
             ('dresser', 0.5), ('desk', 0.2), ('chair', 0.35),
             ('bookshelf', 0.3), ('wardrobe', 0.3), ('suitcase', 0.2),
             ('backpack', 0.15), ('box', 0.15), ('floor_lamp', 0.15)),
    living=(('sofa', 0.8), ('table', 0.7), ('bookshelf', 0.5),
            ('chair', 0.6), ('chair', 0.3), ('dresser', 0.25),
            ('cabinet', 0.35), ('floor_lamp', 0.35), ('box', 0.15)),
    dining=(('table', 0.9), ('chair', 0.9), ('chair', 0.8), ('chair', 0.5),
            ('bookshelf', 0.3), ('dresser', 0.3), ('cabinet', 0.4),
            ('floor_lamp', 0.15)),
    office=(('desk', 0.9), ('chair', 0.9), ('bookshelf', 0.6),
            ('table', 0.3), ('chair', 0.3), ('dresser', 0.2),
            ('cabinet', 0.4), ('box', 0.3), ('boxes', 0.15),
            ('backpack', 0.25)),
    bathroom=(('toilet', 0.9), ('bathtub', 0.9), ('sink', 0.7),
              ('cabinet', 0.2)))
# What stands on top of a placed object of the key's kind: (kind,
# probability); monitors and bins are unlabelled clutter.
ON_TOP = dict(
    night_stand=(('table_lamp', 0.5), ), dresser=(('table_lamp', 0.35),
                                                  ('tv', 0.25)),
    desk=(('monitor', 0.4), ('table_lamp', 0.2)),
    table=(('box', 0.15), ('bin', 0.1)), cabinet=(('tv', 0.3), ))
# Where each kind stands: against a wall, free in the room, or next to a
# host object of the given kinds.
WALL_CLASSES = {'bed', 'sofa', 'desk', 'dresser', 'bookshelf', 'toilet',
                'bathtub', 'night_stand', 'cabinet', 'wardrobe', 'sink'}
HOSTS = dict(night_stand=('bed',), chair=('desk', 'table'))
MULTIPLE = {'chair', 'night_stand'}


@dataclass
class Camera:
    k: np.ndarray  # [3, 3] float32 intrinsics, as the calib file holds them
    rtilt: np.ndarray  # [3, 3] float32 tilt, as the calib file holds it
    depth2img: np.ndarray  # [3, 3] float64: the converter's K @ A @ Rtilt^T
    height: int
    width: int
    floor_z: float  # floor height in depth coordinates (negative)


@dataclass
class Placed:
    name: str  # kind (objects.KINDS), 'clutter' or 'structure'
    parts: List[Part]
    transform: np.ndarray  # [4, 4] object frame -> depth frame
    footprint: np.ndarray  # [4, 2] room-frame footprint corners
    pose: Tuple[float, float, float]  # room-frame x, y, yaw
    cls: Optional[str]  # class (one of the 37), None for clutter / structure
    bounds: np.ndarray = field(default=None)  # [2, 3] object-frame bounds
    raw_name: Optional[str] = None  # the name its label line carries
    # The object this one is a part of in the annotation (a bed for its
    # pillows): that object's box holds it too.
    host: Optional['Placed'] = None


def make_camera(rng: np.random.Generator, height: int, width: int) -> Camera:
    """A SUN RGB-D-like camera: f ~ 0.725 * width (529.5 px at 730 wide),
    1.0-1.5 m above the floor, pitched 5-20 degrees down, rolled +-2."""
    f = 0.725 * width * rng.uniform(0.95, 1.05)
    k = np.array([[f, 0, width / 2 + rng.uniform(-3, 3)],
                  [0, f, height / 2 + rng.uniform(-3, 3)], [0, 0, 1]])
    pitch = np.deg2rad(rng.uniform(5, 20))
    roll = np.deg2rad(rng.uniform(-2, 2))
    rx = trimesh.transformations.rotation_matrix(-pitch, (1, 0, 0))[:3, :3]
    ry = trimesh.transformations.rotation_matrix(roll, (0, 1, 0))[:3, :3]
    rtilt = ry @ rx  # tilted camera-aligned frame -> upright depth frame
    # float32 as the converter reads them, so the rendering camera is the converted one to the bit
    k, rtilt = k.astype(np.float32), rtilt.astype(np.float32)
    return Camera(k, rtilt, depth2img_matrix(k, rtilt), height, width,
                  -rng.uniform(1.0, 1.5))


def _rot2(a: float) -> np.ndarray:
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _footprint(bounds: np.ndarray, x: float, y: float, yaw: float
               ) -> np.ndarray:
    """[4, 2] corners of the object-frame xy bounds at pose (x, y, yaw)."""
    (x0, y0), (x1, y1) = bounds[0, :2], bounds[1, :2]
    c = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return c @ _rot2(yaw).T + (x, y)


def _overlap(a: np.ndarray, b: np.ndarray, gap: float) -> bool:
    """Separating-axis test for two convex quads [4, 2], grown by ``gap``."""
    for poly in (a, b):
        for i in range(4):
            e = poly[(i + 1) % 4] - poly[i]
            n = np.array([-e[1], e[0]]) / (np.linalg.norm(e) + 1e-12)
            pa, pb = a @ n, b @ n
            if pa.max() + gap <= pb.min() or pb.max() + gap <= pa.min():
                return False
    return True


class Room:
    """Room frame: camera at the origin looking along +y; walls at x = -xl,
    x = xr and y = yb; floor at z = floor_z. ``psi`` turns the room frame
    into the depth frame (about z through the camera)."""

    def __init__(self, rng: np.random.Generator, cam: Camera, kind: str):
        self.rng, self.cam, self.kind = rng, cam, kind
        self.xl = rng.uniform(1.6, 2.8)
        self.xr = rng.uniform(1.6, 2.8)
        self.yb = rng.uniform(3.2, 5.0)
        self.yf = -0.6
        self.psi = rng.uniform(-0.45, 0.45)
        self.placed: List[Placed] = []

    def to_world(self, x: float, y: float, z: float, yaw: float) -> np.ndarray:
        """[4, 4] object frame at room pose -> depth frame."""
        t = trimesh.transformations.rotation_matrix(yaw, (0, 0, 1))
        t[:3, 3] = (x, y, z)
        return trimesh.transformations.rotation_matrix(self.psi,
                                                       (0, 0, 1)) @ t

    def visible(self, t: np.ndarray, bounds: np.ndarray) -> bool:
        """All 8 box corners 0.8 m or more away and inside the image grown
        by 10% on each side: few objects are cut by the image border, whose
        partial shapes would name no class."""
        corners = np.stack(np.meshgrid(*bounds.T, indexing='ij'), -1
                           ).reshape(-1, 3)  # [8, 3]
        h = (corners @ t[:3, :3].T + t[:3, 3]) @ self.cam.depth2img.T
        if (h[:, 2] < 0.8).any():
            return False
        u, v = h[:, 0] / h[:, 2], h[:, 1] / h[:, 2]
        mw, mh = 0.1 * self.cam.width, 0.1 * self.cam.height
        return bool((u > -mw).all() and (u < self.cam.width + mw).all() and
                    (v > -mh).all() and (v < self.cam.height + mh).all())

    def pose_for(self, name: str, bounds: np.ndarray, host: Optional[Placed]
                 ) -> Tuple[float, float, float]:
        """A random room-frame pose (x, y, yaw) for an object."""
        rng = self.rng
        (x0, y0), (x1, y1) = bounds[0, :2], bounds[1, :2]
        gap = rng.uniform(0.05, 0.1)  # wall points stay out of the box
        if host is not None:
            hb = host.bounds
            hx, hy, hyaw = host.pose
            if name == 'night_stand':  # beside the headboard, same heading
                s = rng.choice((-1, 1))
                side = hb[1, 1] - y0 if s > 0 else hb[0, 1] - y1
                lx = hb[0, 0] - x0 + rng.uniform(0.0, 0.06)
                ly = side + s * rng.uniform(0.03, 0.2)
                yaw = hyaw
            else:  # a chair facing its desk or table from one side
                side = rng.integers(4) if host.name == 'table' else 0
                yaw_l = [np.pi, 0.0, -np.pi / 2, np.pi / 2][side]
                d = rng.uniform(0.05, 0.3)
                lx, ly = [(hb[1, 0] + d + x1, rng.uniform(-0.2, 0.2) *
                           (hb[1, 1] - hb[0, 1])),
                          (hb[0, 0] - d - x1, rng.uniform(-0.2, 0.2) *
                           (hb[1, 1] - hb[0, 1])),
                          (rng.uniform(-0.2, 0.2) * (hb[1, 0] - hb[0, 0]),
                           hb[1, 1] + d + x1),
                          (rng.uniform(-0.2, 0.2) * (hb[1, 0] - hb[0, 0]),
                           hb[0, 1] - d - x1)][side]
                yaw = hyaw + yaw_l + rng.uniform(-0.3, 0.3)
            xy = _rot2(hyaw) @ (lx, ly) + (hx, hy)
            return xy[0], xy[1], yaw
        jit = rng.uniform(-0.05, 0.05)
        wall = name in WALL_CLASSES and rng.random() < 0.85
        if not wall:
            return (rng.uniform(-self.xl + 0.4, self.xr - 0.4),
                    rng.uniform(1.2, self.yb - 0.4), rng.uniform(-np.pi, np.pi))
        side = rng.choice(3, p=(0.5, 0.25, 0.25))
        if side == 0:  # back wall, facing -y
            return (rng.uniform(-self.xl + 0.3, self.xr - 0.3),
                    self.yb - gap + x0, -np.pi / 2 + jit)
        if side == 1:  # left wall, facing +x
            return -self.xl + gap - x0, rng.uniform(1.0, self.yb - 0.3), jit
        return self.xr - gap + x0, rng.uniform(1.0, self.yb - 0.3), np.pi + jit

    def place(self, name: str, parts: List[Part], cls: Optional[str],
              host: Optional[Placed] = None, tries: int = 40
              ) -> Optional[Placed]:
        """Find a free, visible pose; None when none is found."""
        bounds = parts_bounds(parts)
        for _ in range(tries):
            x, y, yaw = self.pose_for(name, bounds, host)
            fp = _footprint(bounds, x, y, yaw)
            c = WALL_CLEARANCE
            if (fp[:, 0].min() < -self.xl + c or fp[:, 0].max() > self.xr - c
                    or fp[:, 1].max() > self.yb - c or fp[:, 1].min() < 0.4):
                continue
            if any(_overlap(fp, p.footprint, 0.02) for p in self.placed):
                continue
            t = self.to_world(x, y, self.cam.floor_z, yaw)
            if cls is not None and not self.visible(t, bounds):
                continue
            p = Placed(name, parts, t, fp, (x, y, yaw), cls, bounds)
            self.placed.append(p)
            return p
        return None

    def on_top(self, host: Placed, name: str, parts: List[Part],
               beside: List[Placed], tries: int = 10) -> Optional[Placed]:
        """``parts`` standing on a host's top, inside its footprint and clear
        of the things ``beside`` it on the same top; None when they do not
        fit. Labelled (class of ``name``) when its box is in view."""
        hb = host.bounds
        b = parts_bounds(parts)
        rng = self.rng
        hx, hy, hyaw = host.pose
        for _ in range(tries):
            lx = rng.uniform(hb[0, 0] - b[0, 0], max(hb[0, 0] - b[0, 0], hb[1, 0] - b[1, 0]))
            ly = rng.uniform(hb[0, 1] - b[0, 1], max(hb[0, 1] - b[0, 1], hb[1, 1] - b[1, 1]))
            xy = _rot2(hyaw) @ (lx, ly) + (hx, hy)
            yaw = hyaw + rng.uniform(-0.3, 0.3)
            fp = _footprint(b, xy[0], xy[1], yaw)
            local = (fp - (hx, hy)) @ _rot2(hyaw)  # [4, 2] in the host's frame
            if ((local < hb[0, :2]).any() or (local > hb[1, :2]).any() or
                    any(_overlap(fp, p.footprint, 0.02) for p in beside)):
                continue  # turned over the host's edge, or onto a neighbour
            t = self.to_world(xy[0], xy[1], self.cam.floor_z + hb[1, 2], yaw)
            cls = KINDS.get(name)
            if cls is not None and not self.visible(t, b):
                cls, name = None, 'clutter'
            return Placed(name, parts, t, fp, (xy[0], xy[1], yaw), cls, b)
        return None


def structure(rng: np.random.Generator, room: Room) -> List[Placed]:
    """Floor, walls, ceiling (tiled so no triangle crosses the camera
    plane), skirting, and wall decor, as unlabelled parts."""
    kind = room.kind
    if kind == 'bathroom':
        floor = Material(jitter(rng, (0.85, 0.85, 0.83)), TEX_TILES,
                         rng.uniform(0.2, 0.4), 2)
    elif rng.random() < 0.6:
        floor = pick(rng, WOODS, TEX_PLANKS, rng.uniform(0.1, 0.2),
                     int(rng.integers(2)))
    else:
        floor = pick(rng, np.array([[0.55, 0.5, 0.45], [0.4, 0.42, 0.45],
                                    [0.7, 0.66, 0.6]]), TEX_CARPET, 0.01)
    wall = pick(rng, WALLS)
    wall_tex = TEX_TILES if kind == 'bathroom' else TEX_PLAIN
    wall.tex, wall.scale = wall_tex, rng.uniform(0.15, 0.3)
    ceil = Material(jitter(rng, (0.95, 0.95, 0.95), 0.02))
    xl, xr, yb, yf = room.xl, room.xr, room.yb, room.yf
    hgt = rng.uniform(2.5, 2.9)
    parts = []
    tile = 0.4

    def grid(a0, a1, b0, b1):
        na = max(1, int(np.ceil((a1 - a0) / tile)))
        nb = max(1, int(np.ceil((b1 - b0) / tile)))
        return (np.linspace(a0, a1, na + 1), np.linspace(b0, b1, nb + 1))

    xs, ys = grid(-xl, xr, yf, yb)
    for i in range(len(xs) - 1):
        for j in range(len(ys) - 1):
            cx, cy = (xs[i] + xs[i + 1]) / 2, (ys[j] + ys[j + 1]) / 2
            ex, ey = xs[i + 1] - xs[i], ys[j + 1] - ys[j]
            parts.append(box((cx, cy, -0.005), (ex, ey, 0.01), floor))
            parts.append(box((cx, cy, hgt + 0.005), (ex, ey, 0.01), ceil))
    zs = np.linspace(0, hgt, int(np.ceil(hgt / tile)) + 1)
    for k in range(len(zs) - 1):
        cz, ez = (zs[k] + zs[k + 1]) / 2, zs[k + 1] - zs[k]
        for i in range(len(xs) - 1):
            parts.append(box(((xs[i] + xs[i + 1]) / 2, yb + 0.005, cz),
                             (xs[i + 1] - xs[i], 0.01, ez), wall))
        for j in range(len(ys) - 1):
            for x, s in ((-xl, -1), (xr, 1)):
                parts.append(box((x + s * 0.005, (ys[j] + ys[j + 1]) / 2, cz),
                                 (0.01, ys[j + 1] - ys[j], ez), wall))
    skirt = pick(rng, np.array([[0.95, 0.95, 0.93], [0.4, 0.3, 0.2]]))
    parts.append(box(((xr - xl) / 2, yb - 0.005, 0.04), (xl + xr, 0.01, 0.08),
                     skirt))
    for x, s in ((-xl, 1), (xr, -1)):
        parts.append(box((x + s * 0.005, (yb + 0.4) / 2, 0.04),
                         (0.01, yb - 0.4, 0.08), skirt))
    # decor: a framed picture, a window or a door on the walls
    for _ in range(int(rng.integers(1, 4))):
        what = rng.choice(('picture', 'window', 'door'))
        w, h, z = dict(picture=(rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.7),
                                rng.uniform(1.3, 1.7)),
                       window=(rng.uniform(0.8, 1.4), rng.uniform(0.9, 1.3),
                               rng.uniform(1.3, 1.6)),
                       door=(rng.uniform(0.8, 0.95), 2.05, 1.025))[what]
        col = dict(picture=jitter(rng, rng.uniform(0.2, 0.9, 3), 0.2),
                   window=jitter(rng, (0.75, 0.85, 0.95), 0.05),
                   door=jitter(rng, WOODS[rng.integers(len(WOODS))]))[what]
        frame = Material(jitter(rng, (0.3, 0.25, 0.2) if what == 'picture'
                                else (0.95, 0.95, 0.94)))
        on = rng.integers(3)
        if on == 0:
            c = rng.uniform(-xl + w, xr - w)
            parts.append(box((c, yb - 0.015, z), (w + 0.08, 0.02, h + 0.08),
                             frame))
            parts.append(box((c, yb - 0.03, z), (w, 0.02, h), Material(col)))
        else:
            x, s = ((-xl, 1), (xr, -1))[on - 1]
            c = rng.uniform(1.0, yb - w)
            parts.append(box((x + s * 0.015, c, z), (0.02, w + 0.08, h + 0.08),
                             frame))
            parts.append(box((x + s * 0.03, c, z), (0.02, w, h), Material(col)))
    t = room.to_world(0, 0, room.cam.floor_z, 0)
    return [Placed('structure', parts, t, np.zeros((4, 2)), (0, 0, 0), None,
                   parts_bounds(parts))]


def _detach(p: Placed) -> List[Placed]:
    """Split the parts annotated on their own (a bed's pillows) off ``p``
    into objects of their kind; ``p`` keeps its bounds, which hold them."""
    own = [q for q in p.parts if q.kind is None]
    out = [Placed(q.kind, [q], p.transform, np.zeros((4, 2)), p.pose,
                  KINDS[q.kind], parts_bounds([q]), host=p)
           for q in p.parts if q.kind is not None]
    p.parts = own
    return out


def _place_wanted(rng: np.random.Generator, room: Room, wanted: List[str]
                  ) -> List[Placed]:
    """Place the wanted kinds (labelled), their attached parts and, on
    their tops, lamps, screens and boxes (labelled or clutter)."""
    labelled = []
    for name in wanted:
        host = None
        if name in HOSTS:
            hosts = [p for p in labelled if p.name in HOSTS[name]]
            if hosts and rng.random() < 0.8:
                host = hosts[rng.integers(len(hosts))]
        # an overall scale per object blurs the size ranges between classes
        parts = scaled(BUILDERS[name](rng), rng.uniform(*OBJECT_SCALE))
        p = room.place(name, parts, KINDS[name], host)
        if p is None and host is not None:
            p = room.place(name, parts, KINDS[name])
        if p is not None:
            labelled += [p] + _detach(p)
    tops = []
    for p in list(labelled):
        beside = []
        for name, prob in ON_TOP.get(p.name, ()):
            if rng.random() < prob:
                build = BUILDERS.get(name) or CLUTTER[name]
                q = room.on_top(p, name, build(rng), beside)
                if q is not None:
                    beside.append(q)
        tops += beside
    return labelled + tops


def compose(rng: np.random.Generator, cam: Camera, primary: str
            ) -> Tuple[Room, List[Placed]]:
    """Lay out a room around a primary class; returns the room and all
    placed things (labelled objects, clutter and structure), each labelled
    one with its raw annotation name."""
    kind = PRIMARY_ROOMS[primary][rng.integers(len(PRIMARY_ROOMS[primary]))]
    room = Room(rng, cam, kind)
    wanted = [primary]
    for c, p in ROOM_EXTRAS[kind]:
        # chairs and night stands come in sets; one of anything else
        if rng.random() < p and (c in MULTIPLE or c not in wanted):
            wanted.append(c)
    # test classes first, anchors (hosts) before dependants, extras last
    wanted.sort(key=lambda c: (KINDS[c] in EXTRA_CLASSES, c in HOSTS))
    placed = _place_wanted(rng, room, wanted)
    for _ in range(int(rng.integers(1, 4))):  # clutter on the floor
        name = rng.choice(('plant', 'bin'))
        c = room.place(name, CLUTTER[name](rng), None, tries=10)
        if c is not None:
            placed.append(c)
    for p in placed:
        if p.cls is not None:
            p.raw_name = raw_name(rng, p.name)
    return room, placed + structure(rng, room)


def box3d(p: Placed, psi: float) -> np.ndarray:
    """[7] x y z dx dy dz yaw (box centre, depth frame) of a placed object:
    mesh bounds grown by BOX_MARGIN, bottom FLOOR_CLEARANCE above what it
    stands on (the floor, a top, a mattress: its frame's z = 0 or its own
    bottom, whichever is higher), so that surface's points stay out.
    """
    lo = p.bounds[0] - (BOX_MARGIN, BOX_MARGIN, 0)
    hi = p.bounds[1] + BOX_MARGIN
    lo[2] = max(lo[2], 0.0) + FLOOR_CLEARANCE
    c = p.transform[:3, :3] @ ((lo + hi) / 2) + p.transform[:3, 3]
    yaw = (p.pose[2] + psi + np.pi) % (2 * np.pi) - np.pi
    return np.concatenate([c, hi - lo, [yaw]])


def _mesh_arrays(placed: List[Placed]):
    """Concatenate all parts in the depth frame: verts [V, 3], faces [F, 3],
    per-face material index [F], per-face instance (-1 unlabelled) [F],
    and the material list."""
    verts, faces, fmat, finst, mats = [], [], [], [], []
    nv = 0
    for k, p in enumerate(placed):
        for part in p.parts:
            v = part.mesh.vertices @ p.transform[:3, :3].T + p.transform[:3, 3]
            f = part.mesh.faces
            verts.append(v)
            faces.append(f + nv)
            nv += len(v)
            fmat.append(np.full(len(f), len(mats)))
            finst.append(np.full(len(f), k if p.cls is not None else -1))
            mats.append(part.material)
    return (np.concatenate(verts), np.concatenate(faces),
            np.concatenate(fmat), np.concatenate(finst), mats)


def depth_noise_std(w: np.ndarray) -> np.ndarray:
    """Axial depth noise (m) of a structured-light sensor at camera depth w:
    grows with the square of the distance (after Nguyen et al. 2012, scaled
    down as SUN RGB-D's depth maps are refined over several frames)."""
    return 0.0015 + 0.0007 * w ** 2


def capture(rng: np.random.Generator, cam: Camera, placed: List[Placed]
            ) -> Dict[str, np.ndarray]:
    """Render the scene and back-project a noisy one-view point cloud.

    Returns dict with ``image`` uint8 [H, W, 3] RGB, ``points`` float32
    [N, 6] (xyz rgb, rgb in [0, 1]), ``point_pix`` [N] flat pixel index,
    ``point_inst`` [N] index into ``placed`` (-1 unlabelled) and
    ``pixel_inst`` [H, W] the same per pixel (-1 also where empty).
    """
    verts, faces, fmat, finst, mats = _mesh_arrays(placed)
    r = rasterize(verts, faces, cam.depth2img, cam.height, cam.width)
    face, depth = r['face'].ravel(), r['depth']
    valid = face >= 0
    pos = backproject(depth, cam.depth2img).reshape(-1, 3)  # exact surface
    # per-face normals turned towards the camera (at the origin)
    tri = verts[faces]  # [F, 3, 3]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    n *= -np.sign((n * tri.mean(1)).sum(1, keepdims=True) + 1e-12)
    colour = np.array([m.colour for m in mats])  # [M, 3]
    tex = np.array([m.tex for m in mats])
    scale = np.array([m.scale for m in mats])
    axis = np.array([m.axis for m in mats])
    f = face[valid]
    m = fmat[f]
    light = np.array([rng.uniform(-0.6, 0.6), -rng.uniform(0.3, 0.8), 1.0])
    light /= np.linalg.norm(light)
    tint = jitter(rng, (1.0, 0.96, 0.9), 0.03)
    lum = shade(n[f], pos[valid], light, rng.uniform(0.35, 0.5)) * \
        texture(pos[valid], tex[m], scale[m], axis[m], rng.uniform(0, 100))
    rgb = np.zeros((cam.height * cam.width, 3))
    rgb[valid] = colour[m] * lum[:, None] * tint * rng.uniform(1.0, 1.25)
    img = rgb.reshape(cam.height, cam.width, 3)
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    img = img + rng.normal(0, 0.01, img.shape)
    img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)

    # depth sensor: noise along the ray, holes at random and at edges
    w = depth.copy()
    w[w > 0] += rng.normal(0, 1, (w > 0).sum()) * depth_noise_std(w[w > 0])
    keep = (depth > 0) & (depth < 8.0) & (rng.random(depth.shape) > 0.01)
    jump = np.zeros_like(keep)
    dz = np.abs(np.diff(depth, axis=1)) > 0.05 * depth[:, 1:]
    jump[:, 1:] |= dz
    jump[:, :-1] |= dz
    keep &= ~(jump & (rng.random(depth.shape) < 0.5))
    xyz = backproject(w, cam.depth2img).reshape(-1, 3)
    pix = np.nonzero(keep.ravel())[0]
    pts = np.concatenate([xyz[pix], img.reshape(-1, 3)[pix] / 255.0], 1)
    pixel_inst = np.where(valid, finst[np.maximum(face, 0)], -1)
    return dict(image=img, points=pts.astype(np.float32), point_pix=pix,
                point_inst=finst[face[pix]],
                pixel_inst=pixel_inst.reshape(cam.height, cam.width))
