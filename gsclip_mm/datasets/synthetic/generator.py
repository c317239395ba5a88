"""Synthetic SUN RGB-D: one scene -> the four files of SUN RGB-D's extraction layout.

Writes what mmdetection3d's and VoteNet's MATLAB extraction writes for a
real scene (``data/sunrgbd_raw_sample/README.md``), under ``root``::

    sunrgbd_trainval/depth/NNNNNN.mat   # MATLAB v5, 'instance': float32 [N, 6] x y z r g b (every valid pixel)
    sunrgbd_trainval/image/NNNNNN.jpg
    sunrgbd_trainval/calib/NNNNNN.txt   # Rtilt, then K: 9 numbers each, column-major
    sunrgbd_trainval/label/NNNNNN.txt   # name x y w h cx cy cz hw hl hh ox oy

so that the SUN RGB-D converter (``gsclip_mm.datasets.converters``) turns it
into infos exactly as it does real data. The conventions are the real ones:
1-based pixel coordinates (0-based column j has its centre at u = j + 1),
every point's colour is the pixel it projects into in the JPEG as decoded,
2D boxes ``x y w h`` whose ``[x, x + w]`` are the 1-based first and last
pixel columns of the object. Every scene depends only on (seed, scene
index), so the output does not depend on the number of worker processes.
"""
import io
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np
import scipy.io

from gsclip_mm.structures.boxes import points_in_rboxes
from gsclip_mm.utils import atomic_write
from ..converters.sunrgbd import INPUT_DIR, parse_label_line, subsample_points
from .objects import TEST_CLASSES
from .scene import Camera, Placed, box3d, capture, compose, make_camera

# The four files of a scene, in writing order: the label file last, so a
# scene whose label file exists is whole.
RAW_FILES = (('depth', '.mat'), ('image', '.jpg'), ('calib', '.txt'),
             ('label', '.txt'))
# A MAT v5 file opens with 116 bytes of free text; scipy writes the time there.
MAT_HEADER = b'MATLAB 5.0 MAT-file, gsclip_mm synthetic SUN RGB-D'.ljust(116)


def scene_rng(seed: int, idx: int) -> np.random.Generator:
    """Independent stream per scene: same scene whatever the worker count."""
    return np.random.default_rng([seed, idx])


def plan_scenes(num_scenes: int, seed: int) -> List[str]:
    """Primary class of each scene, in shuffled rounds of the 10 test
    classes with toilet and bathtub twice: the other classes also turn up as
    extras in each other's rooms, bathroom objects only in bathrooms."""
    rng = np.random.default_rng([seed, 1 << 30])
    round_ = list(TEST_CLASSES) + ['toilet', 'bathtub']
    out = []
    while len(out) < num_scenes:
        out += [round_[i] for i in rng.permutation(len(round_))]
    return out[:num_scenes]


def calib_text(cam: Camera) -> str:
    """Rtilt and K, column-major; 9 significant digits give back the float32 values exactly."""
    return ''.join(' '.join(f'{v:.9g}' for v in m.flatten(order='F')) + '\n'
                   for m in (cam.rtilt, cam.k))


def _box_fields(box: np.ndarray) -> str:
    """``cx cy cz hw hl hh ox oy`` of a box ``[x y z dx dy dz yaw]``: hl runs along the heading."""
    x, y, z, dx, dy, dz, yaw = box
    return ' '.join(f'{v:.6f}' for v in (x, y, z, dy / 2, dx / 2, dz / 2, np.cos(yaw), np.sin(yaw)))


def encode_jpeg(image: np.ndarray, quality: int = 92) -> Tuple[bytes, np.ndarray]:
    """JPEG bytes of an RGB image and the RGB image they decode to (OpenCV, as mmcv's default)."""
    ok, jpg = cv2.imencode('.jpg', cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError('JPEG encoding failed')
    decoded = cv2.cvtColor(cv2.imdecode(jpg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return jpg.tobytes(), decoded


def mat_bytes(points: np.ndarray) -> bytes:
    """A MATLAB v5 file holding ``instance`` = ``points``, the same bytes on every run."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, dict(instance=points))
    return MAT_HEADER + buf.getvalue()[len(MAT_HEADER):]


def _pixel_box(pixels: np.ndarray, width: int) -> Tuple[int, int, int, int]:
    """SUN RGB-D's ``x y w h`` of flat 0-based pixel indices: 1-based first column and row, last minus first."""
    rows, cols = pixels // width, pixels % width
    return int(cols.min()) + 1, int(rows.min()) + 1, int(cols.max() - cols.min()), int(rows.max() - rows.min())


def host_index(placed: List[Placed]) -> np.ndarray:
    """[P] index of the object each placed thing is annotated as part of (-1: none), by identity."""
    index = {id(p): k for k, p in enumerate(placed)}
    return np.array([-1 if p.host is None else index[id(p.host)] for p in placed], np.int64)


def annotate(placed: List[Placed], psi: float, points: np.ndarray, point_pix: np.ndarray,
             pixel_inst: np.ndarray, min_points: int) -> Tuple[List[str], List[int]]:
    """Label lines of the objects with at least ``min_points`` of ``points`` in their box, and their indices.

    The 3D box is read back through the converter's parser and cast to
    float32 as the dataset does, so the point counts here are the dataset's.
    The 2D box is tight around the object's visible pixels (its attached
    parts' too) and the pixels of every point in its 3D box.
    """
    width = pixel_inst.shape[1]
    host = host_index(placed)
    owner = np.concatenate([[-1], np.where(host < 0, np.arange(len(placed)), host)])
    pixel_owner = owner[pixel_inst.ravel() + 1]  # [H * W]: the annotated object each pixel shows
    lines, inst_ids = [], []
    for k, p in enumerate(placed):
        if p.cls is None:
            continue
        fields = _box_fields(box3d(p, psi))
        _, _, bbox_3d = parse_label_line(f'{p.raw_name} 0 0 0 0 {fields}')
        inside = points_in_rboxes(points, np.asarray(bbox_3d, dtype=np.float32))  # [N]
        if inside.sum() < min_points:
            continue
        visible = np.flatnonzero((pixel_owner == k) if p.host is None else (pixel_inst.ravel() == k))
        x, y, w, h = _pixel_box(np.concatenate([visible, point_pix[inside]]), width)
        lines.append(f'{p.raw_name} {x} {y} {w} {h} {fields}\n')
        inst_ids.append(k)
    return lines, inst_ids


def generate_scene(idx: int, seed: int, primary: str, height: int = 240, width: int = 320,
                   max_points: int = 50000, min_points: int = 100) -> Tuple[Dict[str, bytes], Dict]:
    """Build, render and annotate one scene.

    Returns:
        files: ``{'depth' | 'image' | 'calib' | 'label': bytes}``, the scene's four files.
        data: for checks: ``image`` uint8 [H, W, 3] RGB as the JPEG decodes,
        ``points`` float32 [N, 6] (the depth file's), ``kept`` [M] the rows
        the converter keeps (its seeded subsample of ``max_points``, with
        ``seed``), ``point_inst`` [N] and ``pixel_inst`` [H, W] (index into
        the scene's placed things of the labelled object each point / pixel
        shows, -1 for none), ``host`` [P] (the object a placed thing is
        annotated as part of, -1 for none), ``inst_ids`` (placed index of
        each label line), ``classes`` (class of each label line),
        ``depth2img`` [3, 3] (the rendering camera).
    """
    rng = scene_rng(seed, idx)
    cam = make_camera(rng, height, width)
    room, placed = compose(rng, cam, primary)
    cap = capture(rng, cam, placed)
    jpg, image = encode_jpeg(cap['image'])
    points = cap['points']
    # colours from the JPEG as decoded, as the real extraction reads the image file
    points[:, 3:] = image.reshape(-1, 3)[cap['point_pix']] / np.float32(255)
    kept = subsample_points(np.arange(len(points)), max_points, seed, idx)  # [M]
    lines, inst_ids = annotate(placed, room.psi, points[kept], cap['point_pix'][kept], cap['pixel_inst'], min_points)
    files = dict(depth=mat_bytes(points), image=jpg, calib=calib_text(cam).encode(), label=''.join(lines).encode())
    data = dict(image=image, points=points, kept=kept, point_inst=cap['point_inst'], pixel_inst=cap['pixel_inst'],
                host=host_index(placed), inst_ids=np.array(inst_ids, np.int64),
                classes=[placed[k].cls for k in inst_ids], depth2img=cam.depth2img)
    return files, data


def scene_paths(root: str, idx: int) -> Dict[str, str]:
    """Where scene ``idx``'s four files go under ``root`` (the converter's ``--root``)."""
    return {kind: osp.join(root, INPUT_DIR, kind, f'{idx:06d}{ext}') for kind, ext in RAW_FILES}


def write_scene(root: str, idx: int, files: Dict[str, bytes]) -> None:
    """Write the scene's files, each atomically, the label file last."""
    paths = scene_paths(root, idx)
    for kind, _ in RAW_FILES:
        atomic_write(paths[kind], files[kind])


def make_scene(args: Tuple) -> Dict:
    """Worker entry: generate and write scene ``idx``; returns its index and classes."""
    root, idx, seed, primary, height, width, max_points, min_points = args
    files, data = generate_scene(idx, seed, primary, height, width, max_points, min_points)
    write_scene(root, idx, files)
    return dict(sample_idx=idx, classes=data['classes'])
