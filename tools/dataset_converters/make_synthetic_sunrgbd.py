"""Write a synthetic SUN RGB-D set in mmdetection3d's converted layout.

    python tools/dataset_converters/make_synthetic_sunrgbd.py --out-dir data/synthetic_sunrgbd \
        --num-scenes 100 --seed 0 --workers 2

Output (the layout of mmdetection3d's ``tools/create_data.py sunrgbd``)::

    <out-dir>/sunrgbd_infos_train.pkl   # scenes of the train split
    <out-dir>/sunrgbd_infos_val.pkl     # scenes of the val split
    <out-dir>/points/NNNNNN.bin         # float32 [N, 6] xyz rgb, rgb in [0, 1]
    <out-dir>/sunrgbd_trainval/image/NNNNNN.jpg

The split is by scene (``--val-ratio``, deterministic from the seed), so no
object of a val scene is seen in training. Each scene depends only on
(seed, scene index): the output is the same for any ``--workers``. To look at
the result: ``tools/analysis_tools/preview_synthetic.py``.
"""
import argparse
import os
import os.path as osp
import time

from mmengine.utils import track_parallel_progress, track_progress

from gsclip_mm.datasets.synthetic import (CLASSES, make_scene, plan_scenes,
                                          split_scenes, write_infos)
from gsclip_mm.datasets.synthetic.generator import IMAGE_DIR, POINTS_DIR


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out-dir', default='data/synthetic_sunrgbd')
    p.add_argument('--num-scenes', type=int, default=100,
                   help='scenes to write (about 2.9 labelled objects each)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--height', type=int, default=240, help='image height')
    p.add_argument('--width', type=int, default=320, help='image width')
    p.add_argument('--max-points', type=int, default=50000,
                   help='points kept per scene (create_data.py keeps 50000)')
    p.add_argument('--min-points', type=int, default=100,
                   help='objects with fewer points in their box are not '
                   'annotated')
    p.add_argument('--val-ratio', type=float, default=0.1,
                   help='fraction of scenes in sunrgbd_infos_val.pkl')
    p.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1),
                   help='processes (the output does not depend on it)')
    args = p.parse_args(argv)
    if args.num_scenes < 1:
        p.error(f'--num-scenes must be >= 1, got {args.num_scenes}')
    if args.height < 32 or args.width < 32:
        p.error(f'image size {args.width}x{args.height} is too small')
    return args


def main(argv=None):
    args = parse_args(argv)
    for sub in (POINTS_DIR, IMAGE_DIR):
        os.makedirs(osp.join(args.out_dir, sub), exist_ok=True)
    primaries = plan_scenes(args.num_scenes, args.seed)
    # scene files are numbered from 1, like SUN RGB-D's 000001.jpg
    tasks = [(args.out_dir, i + 1, args.seed, primaries[i], args.height,
              args.width, args.max_points, args.min_points)
             for i in range(args.num_scenes)]
    t0 = time.time()
    if args.workers > 1:
        infos = track_parallel_progress(make_scene, tasks, args.workers)
    else:
        infos = track_progress(make_scene, tasks)
    train, val = split_scenes(args.num_scenes, args.val_ratio, args.seed)
    write_infos(osp.join(args.out_dir, 'sunrgbd_infos_train.pkl'),
                [infos[i] for i in train])
    write_infos(osp.join(args.out_dir, 'sunrgbd_infos_val.pkl'),
                [infos[i] for i in val])
    counts = [0] * len(CLASSES)
    for info in infos:
        for inst in info['instances']:
            counts[inst['bbox_label_3d']] += 1
    print(f'\nwrote {args.num_scenes} scenes ({len(train)} train, {len(val)} '
          f'val), {sum(counts)} objects in {time.time() - t0:.1f} s to '
          f'{args.out_dir}')
    print('objects per class: ' + ', '.join(
        f'{c} {n}' for c, n in zip(CLASSES, counts)))


if __name__ == '__main__':
    main()
