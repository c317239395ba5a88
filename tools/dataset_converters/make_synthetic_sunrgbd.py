"""Write a synthetic SUN RGB-D set in SUN RGB-D's extraction layout and convert it as real data.

    python tools/dataset_converters/make_synthetic_sunrgbd.py --out-dir data/synthetic_sunrgbd \
        --num-scenes 300 --seed 0 --workers 2

Step 1 writes each scene as the MATLAB extraction writes a real one, under
``<out-dir>/raw/sunrgbd_trainval/{depth,image,calib,label}/`` (the objects
under raw SUN RGB-D names: the 10 test classes and extra classes of the 37,
variants included). Step 2 runs the SUN RGB-D converter (the library function
behind ``sunrgbd_converter.py``) on it, into ``<out-dir>``::

    <out-dir>/sunrgbd_infos_trainval.pkl        # every scene; configs cut it by scene (split='train'|'val'|'test')
    <out-dir>/points/NNNNNN.bin                 # float32 [M, 6] xyz rgb, the converter's seeded subsample
    <out-dir>/sunrgbd_trainval/image/NNNNNN.jpg
    <out-dir>/sunrgbd_converter_report.json

Each scene depends only on (seed, scene index): the output is the same for
any ``--workers``. To look at the result: ``tools/analysis_tools/preview_synthetic.py``.
"""
import argparse
import os
import os.path as osp
import time
from collections import Counter

from mmengine.utils import track_parallel_progress, track_progress

from gsclip_mm.datasets.converters import convert, format_report
from gsclip_mm.datasets.synthetic import CLASSES, make_scene, plan_scenes

RAW_DIR = 'raw'  # under --out-dir: the converter's --root


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out-dir', default='data/synthetic_sunrgbd')
    p.add_argument('--num-scenes', type=int, default=100, help='scenes to write (about 4 labelled objects each)')
    p.add_argument('--seed', type=int, default=0, help='seed of the scenes and of the converter\'s point subsample')
    p.add_argument('--height', type=int, default=240, help='image height')
    p.add_argument('--width', type=int, default=320, help='image width')
    p.add_argument('--max-points', type=int, default=50000,
                   help='points the converter keeps per scene (create_data.py keeps 50000)')
    p.add_argument('--min-points', type=int, default=100,
                   help='objects with fewer converted points in their box are not annotated')
    p.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1),
                   help='processes (the output does not depend on it)')
    args = p.parse_args(argv)
    if args.num_scenes < 1:
        p.error(f'--num-scenes must be >= 1, got {args.num_scenes}')
    if args.height < 32 or args.width < 32:
        p.error(f'image size {args.width}x{args.height} is too small')
    if args.workers < 1:
        p.error(f'--workers must be >= 1, got {args.workers}')
    if args.min_points < 1:
        p.error(f'--min-points must be >= 1 (an annotated object needs a point), got {args.min_points}')
    return args


def generate(args, root: str) -> list:
    """Write every scene's raw files under ``root``; ``[{sample_idx, classes}]`` in scene order."""
    primaries = plan_scenes(args.num_scenes, args.seed)
    # scenes are numbered from 1, like SUN RGB-D's 000001
    tasks = [(root, i + 1, args.seed, primaries[i], args.height, args.width, args.max_points, args.min_points)
             for i in range(args.num_scenes)]
    if args.workers > 1:
        return track_parallel_progress(make_scene, tasks, args.workers)
    return track_progress(make_scene, tasks)


def check_report(report: dict, scenes: list) -> None:
    """Every scene with objects converted, every name labelled: anything else is a generator bug."""
    empty = {s['sample_idx'] for s in scenes if not s['classes']}
    bad = [d for d in report['skipped_scenes'] if d['scene'] not in empty]
    o = report['objects']
    if bad or o['unknown'] or o['no_class'] or o['total'] != sum(len(s['classes']) for s in scenes):
        raise RuntimeError(f'the converter did not take the synthetic scenes as written: skipped {bad}, '
                           f'unlabelled {report["unlabelled_objects"][:10]}, {o}')


def main(argv=None):
    args = parse_args(argv)
    root = osp.join(args.out_dir, RAW_DIR)
    t0 = time.time()
    scenes = generate(args, root)
    t1 = time.time()
    # The converter's own run, as for real data; the seed also picks its point subsample, which the
    # generator counted min_points on. Copies, not symlinks: the folder stays whole when moved.
    report = convert(root, args.out_dir, num_points=args.max_points, seed=args.seed, workers=args.workers,
                     copy_images=True, scene_ids=[s['sample_idx'] for s in scenes])
    check_report(report, scenes)
    counts = Counter(c for s in scenes for c in s['classes'])
    print(f'\n{format_report(report)}\n'
          f'wrote {args.num_scenes} scenes, {sum(counts.values())} objects to {args.out_dir}: generated in '
          f'{t1 - t0:.1f} s, converted in {time.time() - t1:.1f} s')
    print('objects per class: ' + ', '.join(f'{c} {counts[c]}' for c in CLASSES))
    return report


if __name__ == '__main__':
    main()
