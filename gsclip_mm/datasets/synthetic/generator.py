"""Synthetic SUN RGB-D: one scene -> mmdetection3d infos entry + files.

Writes exactly the layout of ``tools/create_data.py sunrgbd``::

    <out>/sunrgbd_infos_train.pkl, sunrgbd_infos_val.pkl
    <out>/points/NNNNNN.bin                  # float32 [N, 6] xyz rgb
    <out>/sunrgbd_trainval/image/NNNNNN.jpg

Every scene depends only on (seed, scene index), so the output does not
depend on the number of worker processes.
"""
import os.path as osp
import pickle
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from gsclip_mm.utils import atomic_write

from ..utils import points_in_rboxes
from .objects import CLASSES
from .scene import box3d, capture, compose, make_camera

POINTS_DIR = 'points'
IMAGE_DIR = osp.join('sunrgbd_trainval', 'image')


def scene_rng(seed: int, idx: int) -> np.random.Generator:
    """Independent stream per scene: same scene whatever the worker count."""
    return np.random.default_rng([seed, idx])


def plan_scenes(num_scenes: int, seed: int) -> List[str]:
    """Primary class of each scene, in shuffled rounds of the 10 classes
    with toilet and bathtub twice: the other classes also turn up as extras
    in each other's rooms, bathroom objects only in bathrooms."""
    rng = np.random.default_rng([seed, 1 << 30])
    round_ = list(CLASSES) + ['toilet', 'bathtub']
    out = []
    while len(out) < num_scenes:
        out += [round_[i] for i in rng.permutation(len(round_))]
    return out[:num_scenes]


def generate_scene(idx: int, seed: int, primary: str, height: int = 240,
                   width: int = 320, max_points: int = 50000,
                   min_points: int = 100) -> Tuple[Dict, Dict]:
    """Build, render and annotate one scene.

    Returns:
        info: the ``data_list`` entry (mmdetection3d v2 SUN RGB-D layout).
        data: ``image`` uint8 [H, W, 3] RGB, ``points`` float32 [N, 6],
        ``point_inst`` [N] (index of the labelled object each point was
        sampled from, -1 for walls, floor and clutter; for checks only),
        ``inst_ids`` [len(instances)] (that index per written instance).
    """
    rng = scene_rng(seed, idx)
    cam = make_camera(rng, height, width)
    room, placed = compose(rng, cam, primary)
    cap = capture(rng, cam, placed)
    pts, pix, pinst = cap['points'], cap['point_pix'], cap['point_inst']
    if len(pts) > max_points:  # like create_data.py's 50k-point sampling
        sel = np.sort(rng.choice(len(pts), max_points, replace=False))
        pts, pix, pinst = pts[sel], pix[sel], pinst[sel]
    # per object: its 3D box, the points in it, and its own written points
    instances, inst_ids = [], []
    for k, p in enumerate(placed):
        if p.label is None:
            continue
        b = box3d(p, room.psi)
        inside = points_in_rboxes(pts, b)  # [N]: the dataset's own test
        if inside.sum() < min_points:
            continue
        own = pix[pinst == k]
        cover = np.concatenate([own, pix[inside]])
        rows, cols = cover // width, cover % width
        # 2D box: tight around the object's visible pixels and around every
        # pixel whose point falls in the 3D box (pixel edges, x1 y1 x2 y2)
        bbox = [float(cols.min()), float(rows.min()),
                float(cols.max() + 1), float(rows.max() + 1)]
        instances.append(dict(bbox=bbox, bbox_label=int(p.label),
                              bbox_3d=[float(x) for x in b],
                              bbox_label_3d=int(p.label)))
        inst_ids.append(k)
    name = f'{idx:06d}'
    info = dict(
        images=dict(CAM0=dict(img_path=f'{name}.jpg',
                              height=np.int32(height), width=np.int32(width),
                              depth2img=cam.depth2img.tolist())),
        lidar_points=dict(num_pts_feats=6, lidar_path=f'{name}.bin'),
        instances=instances)
    return info, dict(image=cap['image'], points=pts, point_inst=pinst,
                      inst_ids=np.array(inst_ids, np.int64))


def write_scene(out_dir: str, info: Dict, data: Dict,
                jpeg_quality: int = 92) -> None:
    """Write the scene's points .bin and .jpg (atomically)."""
    ok, jpg = cv2.imencode('.jpg', cv2.cvtColor(data['image'],
                                                cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise RuntimeError(f'JPEG encoding failed for {info["images"]}')
    atomic_write(osp.join(out_dir, IMAGE_DIR,
                                info['images']['CAM0']['img_path']),
                       jpg.tobytes())
    atomic_write(osp.join(out_dir, POINTS_DIR,
                                info['lidar_points']['lidar_path']),
                       np.ascontiguousarray(data['points'],
                                            np.float32).tobytes())


def make_scene(args: Tuple) -> Dict:
    """Worker entry: generate and write scene ``idx``; returns its info."""
    out_dir, idx, seed, primary, height, width, max_points, min_points = args
    info, data = generate_scene(idx, seed, primary, height, width, max_points,
                                min_points)
    write_scene(out_dir, info, data)
    return info


def write_infos(path: str, data_list: Sequence[Dict]) -> None:
    """mmengine-style infos pickle, as in the real sample (atomic)."""
    payload = dict(metainfo=dict(DATASET='SUNRGBD'), data_list=list(data_list))
    atomic_write(path, pickle.dumps(payload, protocol=4))


def split_scenes(num_scenes: int, val_ratio: float, seed: int
                 ) -> Tuple[List[int], List[int]]:
    """Deterministic scene-level split: sorted train and val indices."""
    if not 0.0 <= val_ratio < 1.0:
        raise ValueError(f'val_ratio must be in [0, 1), got {val_ratio}')
    rng = np.random.default_rng([seed, 1 << 31])
    perm = rng.permutation(num_scenes)
    n_val = int(round(num_scenes * val_ratio))
    return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())
