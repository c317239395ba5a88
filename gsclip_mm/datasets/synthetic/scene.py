"""Scene composition, camera and one-view capture (RGB + noisy depth points).

Coordinates follow mmdetection3d's SUN RGB-D depth frame: the camera sits at
the origin, z is up, the camera looks roughly along +y (pitched down, a
little rolled), and ``depth2img = K @ A @ Rtilt.T`` with ``A`` the axis change
(x, y, z) -> (x, -z, y), exactly as in the converted SUN RGB-D infos.
A room is laid out in its own frame and turned by a random yaw about the
camera, so objects face every direction in the depth frame.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import trimesh

from .meshes import (TEX_CARPET, TEX_PLANKS, TEX_PLAIN, TEX_TILES, WALLS,
                     WOODS, Material, Part, box, jitter, parts_bounds, pick,
                     scaled)
from .objects import BUILDERS, CLASSES, CLUTTER
from .render import backproject, rasterize, shade, texture

AXES = np.array([[1., 0., 0.], [0., 0., -1.], [0., 1., 0.]])  # depth->camera
BOX_MARGIN = 0.02  # metres added around the mesh bounds (sides and top)
OBJECT_SCALE = (0.85, 1.18)  # isotropic scale range applied to every object
FLOOR_CLEARANCE = 0.02  # box bottom above the floor: keeps floor points out

# Which room a scene whose primary class is the key may be; and what else
# the room holds (class, probability), in placement order.
PRIMARY_ROOMS = dict(
    bed=('bedroom',), night_stand=('bedroom',), dresser=('bedroom', 'living'),
    sofa=('living',), table=('dining', 'living'), chair=('dining', 'office'),
    desk=('office', 'bedroom'), bookshelf=('office', 'living'),
    toilet=('bathroom',), bathtub=('bathroom',))
ROOM_EXTRAS = dict(
    bedroom=(('bed', 0.9), ('night_stand', 0.8), ('night_stand', 0.5),
             ('dresser', 0.5), ('desk', 0.2), ('chair', 0.35),
             ('bookshelf', 0.3)),
    living=(('sofa', 0.8), ('table', 0.7), ('bookshelf', 0.5),
            ('chair', 0.6), ('chair', 0.3), ('dresser', 0.25)),
    dining=(('table', 0.9), ('chair', 0.9), ('chair', 0.8), ('chair', 0.5),
            ('bookshelf', 0.3), ('dresser', 0.3)),
    office=(('desk', 0.9), ('chair', 0.9), ('bookshelf', 0.6),
            ('table', 0.3), ('chair', 0.3), ('dresser', 0.2)),
    bathroom=(('toilet', 0.9), ('bathtub', 0.9)))
# Where each class stands: against a wall, free in the room, or next to a
# host object of the given classes.
WALL_CLASSES = {'bed', 'sofa', 'desk', 'dresser', 'bookshelf', 'toilet',
                'bathtub', 'night_stand'}
HOSTS = dict(night_stand=('bed',), chair=('desk', 'table'))
MULTIPLE = {'chair', 'night_stand'}


@dataclass
class Camera:
    depth2img: np.ndarray  # [3, 3]
    height: int
    width: int
    floor_z: float  # floor height in depth coordinates (negative)


@dataclass
class Placed:
    name: str
    parts: List[Part]
    transform: np.ndarray  # [4, 4] object frame -> depth frame
    footprint: np.ndarray  # [4, 2] room-frame footprint corners
    pose: Tuple[float, float, float]  # room-frame x, y, yaw
    label: Optional[int]  # class index, None for clutter / structure
    bounds: np.ndarray = field(default=None)  # [2, 3] object-frame bounds


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
    return Camera(k @ AXES @ rtilt.T, height, width,
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

    def place(self, name: str, parts: List[Part], label: Optional[int],
              host: Optional[Placed] = None, tries: int = 40
              ) -> Optional[Placed]:
        """Find a free, visible pose; None when none is found."""
        bounds = parts_bounds(parts)
        for _ in range(tries):
            x, y, yaw = self.pose_for(name, bounds, host)
            fp = _footprint(bounds, x, y, yaw)
            if (fp[:, 0].min() < -self.xl - 1e-6 or
                    fp[:, 0].max() > self.xr + 1e-6 or
                    fp[:, 1].max() > self.yb + 1e-6 or fp[:, 1].min() < 0.4):
                continue
            if any(_overlap(fp, p.footprint, 0.02) for p in self.placed):
                continue
            t = self.to_world(x, y, self.cam.floor_z, yaw)
            if label is not None and not self.visible(t, bounds):
                continue
            p = Placed(name, parts, t, fp, (x, y, yaw), label, bounds)
            self.placed.append(p)
            return p
        return None

    def on_top(self, host: Placed, parts: List[Part]) -> Placed:
        """Clutter standing on a host's top, inside its footprint."""
        hb = host.bounds
        b = parts_bounds(parts)
        rng = self.rng
        lx = rng.uniform(hb[0, 0] - b[0, 0], max(hb[0, 0] - b[0, 0],
                                                hb[1, 0] - b[1, 0]))
        ly = rng.uniform(hb[0, 1] - b[0, 1], max(hb[0, 1] - b[0, 1],
                                                hb[1, 1] - b[1, 1]))
        hx, hy, hyaw = host.pose
        xy = _rot2(hyaw) @ (lx, ly) + (hx, hy)
        t = self.to_world(xy[0], xy[1], self.cam.floor_z + hb[1, 2],
                          hyaw + rng.uniform(-0.3, 0.3))
        return Placed('clutter', parts, t, np.zeros((4, 2)), (0, 0, 0), None, b)


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


def compose(rng: np.random.Generator, cam: Camera, primary: str
            ) -> Tuple[Room, List[Placed]]:
    """Lay out a room around a primary class; returns the room and all
    placed things (labelled objects, clutter and structure)."""
    kind = PRIMARY_ROOMS[primary][rng.integers(len(PRIMARY_ROOMS[primary]))]
    room = Room(rng, cam, kind)
    wanted = [primary]
    for c, p in ROOM_EXTRAS[kind]:
        # chairs and night stands come in sets; one of anything else
        if rng.random() < p and (c in MULTIPLE or c not in wanted):
            wanted.append(c)
    # anchors (hosts) first so that dependants find them
    wanted.sort(key=lambda c: c in HOSTS)
    labelled = []
    for name in wanted:
        host = None
        if name in HOSTS:
            hosts = [p for p in labelled if p.name in HOSTS[name]]
            if hosts and rng.random() < 0.8:
                host = hosts[rng.integers(len(hosts))]
        # an overall scale per object blurs the size ranges between classes
        parts = scaled(BUILDERS[name](rng), rng.uniform(*OBJECT_SCALE))
        p = room.place(name, parts, CLASSES.index(name), host)
        if p is None and host is not None:
            p = room.place(name, parts, CLASSES.index(name))
        if p is not None:
            labelled.append(p)
    clutter = []
    for p in labelled:  # lamps on stands/dressers, screens on desks
        if p.name in ('night_stand', 'dresser') and rng.random() < 0.5:
            clutter.append(room.on_top(p, CLUTTER['lamp'](rng)))
        elif p.name in ('desk', 'table') and rng.random() < 0.4:
            clutter.append(room.on_top(p, CLUTTER['monitor'](rng)
                                       if p.name == 'desk'
                                       else CLUTTER['bin'](rng)))
    for _ in range(int(rng.integers(1, 4))):  # clutter on the floor
        name = rng.choice(('plant', 'bin', 'lamp'))
        c = room.place(name, CLUTTER[name](rng), None, tries=10)
        if c is not None:
            c.label = None
            clutter.append(c)
    return room, labelled + clutter + structure(rng, room)


def box3d(p: Placed, psi: float) -> np.ndarray:
    """[7] x y z dx dy dz yaw (box centre, depth frame) of a placed object:
    mesh bounds grown by BOX_MARGIN, bottom FLOOR_CLEARANCE above the floor.
    """
    lo = p.bounds[0] - (BOX_MARGIN, BOX_MARGIN, 0)
    hi = p.bounds[1] + BOX_MARGIN
    lo[2] = max(lo[2], FLOOR_CLEARANCE)
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
            finst.append(np.full(len(f), k if p.label is not None else -1))
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
    ``point_inst`` [N] index into ``placed`` (-1 unlabelled).
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
    return dict(image=img, points=pts.astype(np.float32), point_pix=pix,
                point_inst=finst[face[pix]])
