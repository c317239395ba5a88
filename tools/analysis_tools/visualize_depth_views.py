"""PNG grid of multi-view depth images (PointCLIP / CLIP2Point): one row per object, the views from its
points, then the same views from its Gaussians.

    # a config's dataset (its pipeline up to PackGSCLIPInputs: points, image, fitted Gaussians)
    python tools/analysis_tools/visualize_depth_views.py CONFIG --split test --num-objects 4 \
        --out docs/depth_views_synthetic.png
    # a data root with converted infos: Gaussians fitted here (object mode, --fit-steps)
    python tools/analysis_tools/visualize_depth_views.py --data-root tests/data/sunrgbd_sample \
        --ann-file sunrgbd_infos_val.pkl --out docs/depth_views_sunrgbd.png

Each panel is the renderer's output before CLIP's mean/std (near dark, far 200/255, background white),
with the view's name and the object's class written above the rows.
"""
import argparse
import copy
import os.path as osp
from typing import List, Sequence, Tuple

import cv2
import mmcv
import numpy as np
from mmcv.transforms import Compose
from mmengine.config import DictAction
from mmengine.registry import init_default_scope

import gsclip_mm  # noqa: F401
from gsclip_mm.datasets.transforms import RenderGaussianDepthViews, RenderPointDepthViews
from gsclip_mm.gaussians.depth_views import VIEW_NAMES_6
from gsclip_mm.registry import DATASETS, TRANSFORMS
from gsclip_mm.utils.config_utils import SPLITS, load_config, split_dataset
from gsclip_mm.utils.errors import ObjectError

GAP = 4  # pixels between panels
LABEL_H = 18  # pixels of the header row


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Depth views from points and Gaussians, as a PNG grid')
    parser.add_argument('config', nargs='?', help='config whose dataset to draw (or give --data-root)')
    parser.add_argument('--split', default='test', choices=list(SPLITS))
    parser.add_argument('--data-root', help='a converted SUN RGB-D tree, instead of a config')
    parser.add_argument('--ann-file', default='sunrgbd_infos_trainval.pkl')
    parser.add_argument('--fit-steps', type=int, default=100, help='--data-root: fitting steps per object')
    parser.add_argument('--indices', type=int, nargs='+', help='object indices (default: one per class first)')
    parser.add_argument('--num-objects', type=int, default=4)
    parser.add_argument('--num-views', type=int, default=6)
    parser.add_argument('--size', type=int, default=224, help='render side in pixels')
    parser.add_argument('--panel', type=int, default=128, help='panel side in the PNG')
    parser.add_argument('--distance', type=float, default=1.2)
    parser.add_argument('--out', default='depth_views.png')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def build_dataset(args):
    """(dataset without a pipeline, transforms that give points and Gaussians)."""
    if args.data_root:
        init_default_scope('gsclip_mm')
        ds_cfg = dict(type='SUNRGBDObjectDataset', data_root=args.data_root, ann_file=args.ann_file, split=None,
                      min_points=10)
        # object mode on the box crop: seconds per object (ours; the scene fit of the configs takes longer)
        pipeline = [dict(type='LoadObjectPoints'), dict(type='LoadObjectImage'),
                    dict(type='FitGaussians', num_steps=args.fit_steps, resolution=64, opacity_reset_interval=0)]
    else:
        cfg = load_config(args.config, args.cfg_options)
        ds_cfg = split_dataset(cfg, args.split)
        if ds_cfg is None:
            raise ValueError(f'{args.config} has no {SPLITS[args.split]} dataset')
        pipeline = ds_cfg.pop('pipeline')
        names = [str(t['type']).split('.')[-1] for t in pipeline]
        pipeline = pipeline[:names.index('PackGSCLIPInputs')] if 'PackGSCLIPInputs' in names else pipeline
    return DATASETS.build(dict(ds_cfg, pipeline=[])), Compose([TRANSFORMS.build(t) for t in pipeline])


def pick_indices(dataset, num: int) -> List[int]:
    """The first object of each class, in class order, then the next ones: a varied few."""
    labels = [dataset.get_data_info(i).get('gt_label', -1) for i in range(len(dataset))]
    first = sorted({int(l): i for i, l in reversed(list(enumerate(labels)))}.values())
    rest = [i for i in range(len(dataset)) if i not in first]
    return (first + rest)[:num]


def to_panels(views: np.ndarray, mean: Sequence[float], std: Sequence[float], panel: int) -> List[np.ndarray]:
    """[V, 3, S, S] normalised CLIP inputs -> V uint8 [panel, panel] grey images (the pre-normalisation values)."""
    grey = views[:, 0] * std[0] + mean[0]  # [V, S, S]
    return [cv2.resize((np.clip(g, 0, 1) * 255).round().astype(np.uint8), (panel, panel),
                       interpolation=cv2.INTER_AREA) for g in grey]


def grid(rows: List[List[np.ndarray]], header: Sequence[str], labels: Sequence[str], panel: int) -> np.ndarray:
    """uint8 [H, W, 3]: a header of column names, then per row its label and panels."""
    ncol = len(header)
    width = ncol * panel + (ncol - 1) * GAP
    out = [_text_strip(width, [(c * (panel + GAP) + 2, h) for c, h in enumerate(header)])]
    for label, row in zip(labels, rows):
        out.append(_text_strip(width, [(2, label)]))
        line = np.full((panel, width), 255, np.uint8)
        for c, p in enumerate(row):
            line[:, c * (panel + GAP):c * (panel + GAP) + panel] = p
        out.append(line)
    img = np.concatenate(out, 0)
    return np.repeat(img[..., None], 3, -1)


def _text_strip(width: int, texts: Sequence[Tuple[int, str]]) -> np.ndarray:
    strip = np.full((LABEL_H, width), 255, np.uint8)
    for x, t in texts:
        cv2.putText(strip, t, (x, LABEL_H - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1, cv2.LINE_AA)
    return strip


def main(argv=None):
    args = parse_args(argv)
    if not args.config and not args.data_root:
        raise SystemExit('give a config or --data-root')
    dataset, pipeline = build_dataset(args)
    common = dict(num_views=args.num_views, size=args.size, distance=args.distance)
    renderers = [RenderPointDepthViews(**common), RenderGaussianDepthViews(**common)]
    indices = args.indices or pick_indices(dataset, args.num_objects)
    classes = dataset.metainfo.get('classes', ())
    rows, labels = [], []
    for i in indices:
        try:
            results = pipeline(copy.deepcopy(dataset.get_data_info(i)))
            panels = sum((to_panels(r(dict(results))['depth_views'], r.mean, r.std, args.panel) for r in renderers),
                         [])
        except ObjectError as e:
            print(f'skipping object {i}: {e}')
            continue
        label = results.get('gt_label', -1)
        name = classes[label] if 0 <= label < len(classes) else '?'
        labels.append(f'#{i} {name}: {len(results["points"])} points | {len(results["gaussians"])} Gaussians')
        rows.append(panels)
        print(labels[-1])
    names = VIEW_NAMES_6 if args.num_views == 6 else [f'v{k}' for k in range(args.num_views)]
    header = [f'pts {n}' for n in names] + [f'GS {n}' for n in names]
    mmcv.imwrite(grid(rows, header, labels, args.panel), args.out)
    print(f'{len(rows)} objects -> {osp.abspath(args.out)}')
    return args.out


if __name__ == '__main__':
    main()
