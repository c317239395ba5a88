"""A PNG contact sheet of written synthetic scenes and object crops, read back
from disk through the infos file (so it also shows what a loader sees).

    python tools/analysis_tools/preview_synthetic.py data/synthetic_sunrgbd \
        --out docs/synthetic_grid.png [--infos sunrgbd_infos_trainval.pkl]

Scenes with their 2D boxes and class names in rows of three, then object
crops grouped by class (the infos' own classes, in their order; objects
without a class are left out). Boxes are cut as the fitting cuts them
(``crop_box``: SUN RGB-D's 1-based pixel coordinates to 0-based pixels).
"""
import argparse
import os.path as osp
from typing import List

import cv2
import numpy as np

from gsclip_mm.datasets.converters.sunrgbd import IMAGE_DIR
from gsclip_mm.datasets.utils import load_infos
from gsclip_mm.gaussians.fitting import crop_box
from gsclip_mm.utils import atomic_write


def _label(img: np.ndarray, text: str, org, scale: float = 0.4) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3,
                cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), 1, cv2.LINE_AA)


def make_grid(data_root: str, infos: str, out_path: str, num_scenes: int = 6,
              crop_size: int = 120, crops_per_class: int = 2) -> np.ndarray:
    """Scenes with their 2D boxes in rows of three, then object crops grouped
    by class. Returns the BGR grid and writes it to ``out_path``."""
    loaded = load_infos(osp.join(data_root, infos))
    data_list, classes = loaded['data_list'], loaded['metainfo']['classes']
    scenes: List[np.ndarray] = []
    crops = {c: [] for c in range(len(classes))}
    for i, info in enumerate(data_list):
        path = osp.join(data_root, IMAGE_DIR, info['images']['CAM0']['img_path'])
        img = cv2.imread(path)
        if img is None:
            raise FileNotFoundError(f'cannot read image {path}')
        instances = [inst for inst in info['instances'] if inst['bbox_label_3d'] >= 0]
        for inst in instances:
            x1, y1, x2, y2 = crop_box(inst['bbox'], img.shape[1], img.shape[0])
            lab = inst['bbox_label_3d']
            if len(crops[lab]) < crops_per_class:
                c = img[y1:y2, x1:x2]
                s = crop_size / max(c.shape[:2])
                c = cv2.resize(c, (max(1, int(c.shape[1] * s)),
                                   max(1, int(c.shape[0] * s))))
                tile = np.full((crop_size, crop_size, 3), 40, np.uint8)
                tile[:c.shape[0], :c.shape[1]] = c
                _label(tile, classes[lab], (3, crop_size - 6))
                crops[lab].append(tile)
        if len(scenes) < num_scenes:
            vis = img.copy()
            for inst in instances:
                x1, y1, x2, y2 = crop_box(inst['bbox'], img.shape[1], img.shape[0])
                cv2.rectangle(vis, (x1, y1), (x2 - 1, y2 - 1), (0, 255, 255), 1)
                _label(vis, classes[inst['bbox_label_3d']], (x1 + 2, y1 + 12))
            scenes.append(vis)
    h, w = scenes[0].shape[:2]
    rows = [np.concatenate(scenes[r:r + 3] + [np.zeros_like(scenes[0])] *
                           (3 - len(scenes[r:r + 3])), 1)
            for r in range(0, len(scenes), 3)]
    tiles = [t for v in crops.values() for t in v]
    per_row = (3 * w) // crop_size
    blank = np.full((crop_size, crop_size, 3), 40, np.uint8)
    for r in range(0, len(tiles), per_row):
        row = tiles[r:r + per_row]
        row += [blank] * (per_row - len(row))
        strip = np.concatenate(row, 1)
        pad = np.full((crop_size, 3 * w - strip.shape[1], 3), 40, np.uint8)
        rows.append(np.concatenate([strip, pad], 1))
    grid = np.concatenate(rows, 0)
    ok, png = cv2.imencode('.png', grid)
    atomic_write(out_path, png.tobytes())
    return grid


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='PNG of synthetic scenes and object crops')
    p.add_argument('data_root', help='a folder written by tools/dataset_converters/make_synthetic_sunrgbd.py')
    p.add_argument('--out', default='synthetic_grid.png', help='PNG path')
    p.add_argument('--infos', default='sunrgbd_infos_trainval.pkl', help='infos file under data_root')
    p.add_argument('--num-scenes', type=int, default=6, help='scenes shown')
    p.add_argument('--crops-per-class', type=int, default=2)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    grid = make_grid(args.data_root, args.infos, args.out, num_scenes=args.num_scenes,
                     crops_per_class=args.crops_per_class)
    print(f'{grid.shape[1]}x{grid.shape[0]} grid written to {args.out}')
    return grid


if __name__ == '__main__':
    main()
