"""Convert SUN RGB-D's extraction layout into the infos SUNRGBDObjectDataset reads (no mmdetection3d needed).

    python tools/dataset_converters/sunrgbd_converter.py --root data/sunrgbd --out-dir data/sunrgbd37 --workers 4

``--root`` holds ``sunrgbd_trainval/{depth,image,calib,label}`` as written by
mmdetection3d's / VoteNet's MATLAB extraction (``extract_rgbd_data_v2.m``).
Under ``--out-dir`` (default: ``--root``) it writes ``points/NNNNNN.bin``
(float32 [M, 6]), ``sunrgbd_trainval/image/NNNNNN.jpg`` (symlinks to the input
images; ``--copy-images`` copies), ``sunrgbd_infos_trainval.pkl`` (every
scene; ``sunrgbd_infos_{train,val}.pkl`` too when
``sunrgbd_trainval/{train,val}_data_idx.txt`` exist) and
``sunrgbd_converter_report.json``. Every object is kept, its
``bbox_label_3d`` an index into SUN RGB-D's 37 classes (-1 when its raw name
has none); point the dataset at the infos and it reads the 37 names from
their metainfo.

Resumable: each finished scene leaves ``conversion_records/NNNNNN.pkl``; a
rerun (same inputs, settings and mapping table) reuses it and redoes only
the scenes without one. Scenes and label lines that cannot be read are
skipped and listed with the file and line; the exit status is 1 when no
scene could be converted.
"""
import argparse
import os
import sys
import time

from gsclip_mm.datasets.converters import DEFAULT_NUM_POINTS, convert, format_report
from gsclip_mm.datasets.converters.sunrgbd import REPORT_FILE


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--root', default='data/sunrgbd', help='folder holding sunrgbd_trainval/')
    p.add_argument('--out-dir', default=None, help='output root (default: --root)')
    p.add_argument('--num-points', type=int, default=DEFAULT_NUM_POINTS,
                   help='points kept per scene, a seeded subsample (mmdetection3d keeps 50000); 0 or less keeps '
                   'every point')
    p.add_argument('--seed', type=int, default=0, help='seed of the point subsample')
    p.add_argument('--workers', type=int, default=min(8, os.cpu_count() or 1),
                   help='processes (the output does not depend on it)')
    p.add_argument('--copy-images', action='store_true', help='copy the images instead of symlinking them')
    p.add_argument('--mapping', default=None,
                   help='raw-name -> 37-class table (default: the one shipped in gsclip_mm)')
    p.add_argument('--scenes', type=int, nargs='+', default=None, help='convert only these scene indices')
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f'--workers must be >= 1, got {args.workers}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    report = convert(args.root, args.out_dir, num_points=args.num_points, seed=args.seed, workers=args.workers,
                     copy_images=args.copy_images, mapping_file=args.mapping, scene_ids=args.scenes)
    print(f'\n{format_report(report)}\n'
          f'done in {time.time() - t0:.1f} s; the full report: {os.path.join(report["out_dir"], REPORT_FILE)}')
    return 0 if report['scenes']['converted'] + report['scenes']['reused'] > 0 else 1


if __name__ == '__main__':
    sys.exit(main())
