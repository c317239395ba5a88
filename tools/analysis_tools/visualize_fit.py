"""Side-by-side PNG of one object: image crop | crop masked to its points | render of its Gaussians.

    python tools/analysis_tools/visualize_fit.py CONFIG --index 0 [--split train] [--out fit_0.png] [--size 256]

The Gaussians come from FitGaussians' cache (fitted now and cached when
missing, unless ``--no-fit``); the render uses the object's own camera, at
``--size`` pixels wide with the box's aspect ratio. In scene mode
(``FitGaussians(mode='scene')``, the paper's) the object's Gaussians are those
cut from its scene's fit, and a second PNG (``<out>_scene.png``) shows the
whole image | the render of the whole scene fit, ``--size`` wide.
"""
import argparse
import copy
import os.path as osp

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmengine.config import DictAction

import gsclip_mm  # noqa: F401
from gsclip_mm.gaussians import FitSettings, crop_intrinsics, decompose_depth2img, prepare_fit_input, render_gaussians
from gsclip_mm.gaussians.fitting import crop_box
from gsclip_mm.registry import DATASETS, TRANSFORMS
from gsclip_mm.utils.config_utils import SPLITS, fitting_configs, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Crop | target | render PNG for one object')
    parser.add_argument('config')
    parser.add_argument('--index', type=int, default=0, help='object index in the dataset')
    parser.add_argument('--split', default='train', choices=list(SPLITS))
    parser.add_argument('--out', default=None, help='PNG path (default: fit_<split>_<index>.png)')
    parser.add_argument('--size', type=int, default=256, help='width of each panel in pixels')
    parser.add_argument('--no-fit', action='store_true', help='fail instead of fitting an uncached object')
    parser.add_argument('--cache-dir', default=None)
    parser.add_argument('--fit-options', nargs='+', action=DictAction, default={})
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def strip(images, width: int, height: int) -> np.ndarray:
    """uint8 [height, n * width + gaps, 3]: float [h, w, 3] images in [0, 1], each resized to width x height."""
    resize = lambda a: F.interpolate(torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float(),  # noqa
                                     size=(height, width), mode='bilinear', antialias=True)[0].permute(1, 2, 0)
    gap = torch.ones(height, 4, 3)
    parts = [p for a in images for p in (gap, resize(a))][1:]
    return (torch.cat(parts, 1).clamp(0, 1) * 255).round().byte().numpy()


def panels(img: np.ndarray, box, target: np.ndarray, render: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 [height, 3 * width + 2 gaps, 3]: crop | target | render, each resized to width x height."""
    crop = img[box[1]:box[3], box[0]:box[2]].astype(np.float32) / 255.0
    return strip([crop, target, render], width, height)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    configs = fitting_configs(cfg, args.split)
    if configs is None:
        raise ValueError(f'{args.config} has no {SPLITS[args.split]} dataset')
    ds_cfg, pre_cfg, fit_cfg = configs
    fit_cfg.update(args.fit_options)
    if args.cache_dir:
        fit_cfg['cache_dir'] = args.cache_dir
    if args.no_fit:
        fit_cfg['cache_only'] = True
    dataset = DATASETS.build(dict(ds_cfg, pipeline=[]))
    results = Compose([TRANSFORMS.build(t) for t in pre_cfg])(copy.deepcopy(dataset.get_data_info(args.index)))
    fitter = TRANSFORMS.build(fit_cfg)
    results = fitter(results)
    s: FitSettings = fitter.settings
    name = fitter.object_name(results)
    target = prepare_fit_input(results['points'], results['img'], results['depth2img'], results['bbox'], s,
                               name).target
    img = results['img']
    box = crop_box(results['bbox'], img.shape[1], img.shape[0], name)
    width = args.size
    height = max(1, round(width * (box[3] - box[1]) / (box[2] - box[0])))
    K_full, rot = decompose_depth2img(results['depth2img'])
    view = np.eye(4)
    view[:3, :3] = rot
    render = render_gaussians(results['gaussians'], crop_intrinsics(K_full, box, width, height), view, width, height,
                              background=s.background, settings=s)
    out = args.out or f'fit_{args.split}_{args.index}.png'
    mmcv.imwrite(panels(img, box, target, render, width, height)[..., ::-1], out)  # mmcv writes BGR
    print(f'{name}: PSNR {results["fit_psnr"]:.2f} dB ({len(results["gaussians"])} Gaussians) -> {osp.abspath(out)}')
    if s.mode == 'scene':
        scene_png(fitter, results, K_full, view, width, osp.splitext(out)[0] + '_scene.png')
    return out


def scene_png(fitter, results, K_full, view, width, out):
    """The whole image | the render of the whole scene fit (the object's scene, from the cache), ``width`` each."""
    gaussians, psnr = fitter.fit_scene(results, fitter.object_name(results))
    img = results['img']
    H, W = img.shape[:2]
    height = max(1, round(width * H / W))
    render = render_gaussians(gaussians, crop_intrinsics(K_full, (0, 0, W, H), width, height), view, width, height,
                              background=fitter.settings.background, settings=fitter.settings)
    mmcv.imwrite(strip([img.astype(np.float32) / 255.0, render], width, height)[..., ::-1], out)
    print(f'scene {results.get("lidar_path")}: PSNR {psnr:.2f} dB ({len(gaussians)} Gaussians) -> {osp.abspath(out)}')


if __name__ == '__main__':
    main()
