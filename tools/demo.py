"""The end-to-end GS-CLIP demo on the embedded synthetic SUN RGB-D set.

Stages, each a tool of its own with its own progress bar, each skipped when
its output is already there (so a second ``make demo`` is quick):

1. ``tools/dataset_converters/make_synthetic_sunrgbd.py``: synthetic scenes in SUN RGB-D's extraction
   layout, converted by the SUN RGB-D converter into one infos file (the config cuts the splits);
2. ``tools/fit_gaussians.py``: fit every object's Gaussians (cached, resumable);
3. ``tools/train.py``: train the synthetic GS-CLIP config;
4. ``tools/test.py``: zero-shot test of the last checkpoint, printing the table.

The CLIP in this config is a small, randomly initialised, frozen open_clip
model (no network here): the numbers show the pipeline, not CLIP transfer.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import time

from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CFG = osp.join(ROOT, 'configs', 'gsclip', 'pointnet2_gaf_synthetic.py')
# The stages' tools, relative to ROOT (run as commands: no tool imports another).
GENERATE, FIT, TRAIN, TEST = ('tools/dataset_converters/make_synthetic_sunrgbd.py', 'tools/fit_gaussians.py',
                              'tools/train.py', 'tools/test.py')


def parse_args():
    parser = argparse.ArgumentParser(description='Run the GS-CLIP demo end to end')
    parser.add_argument('--config', default=DEFAULT_CFG)
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'))
    # ~1300 objects (~870 of the 10 test classes): enough for the encoder to generalise, few enough for a
    # 15-minute demo on 2 cores; the config holds out a fifth of the scenes for testing.
    parser.add_argument('--num-scenes', type=int, default=300)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def stage(name, cmd):
    print(f'\n=== {name} ===\n$ {" ".join(cmd)}', flush=True)
    start = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT)
    print(f'=== {name}: done in {time.time() - start:.0f} s ===', flush=True)


def main():
    args = parse_args()
    py = sys.executable
    # The synthetic set goes where the config's test split reads it from.
    data_root = osp.join(ROOT, Config.fromfile(args.config).test_dataloader.dataset.data_root)
    # The converter writes the infos last, so its presence means a whole set.
    if not osp.isfile(osp.join(data_root, 'sunrgbd_infos_trainval.pkl')):
        cmd = [py, GENERATE, '--out-dir', data_root, '--seed', str(args.seed), '--num-scenes', str(args.num_scenes),
               '--workers', '2']
        stage('1/4 generate synthetic SUN RGB-D', cmd)
    else:
        print(f'=== 1/4 synthetic SUN RGB-D already in {data_root} ===')
    # Unfittable objects (recorded, then skipped in training and scored as misses in testing) do not stop
    # the demo unless they are more than 5% of the objects.
    stage('2/4 fit Gaussians', [py, FIT, args.config, '--batch-size', '16',
                                '--allow-failures', '0.05'])
    last = osp.join(args.work_dir, 'last_checkpoint')
    stage('3/4 train', [py, TRAIN, args.config, '--work-dir', args.work_dir, '--resume'])
    with open(last) as f:
        ckpt = f.read().strip()
    stage('4/4 zero-shot test', [
        py, TEST, args.config, ckpt, '--work-dir', args.work_dir, '--out',
        osp.join(args.work_dir, 'predictions.pkl')
    ])
    print(f'\nPredictions: {osp.join(args.work_dir, "predictions.pkl")}; logs: {args.work_dir}')
    print('Note: the CLIP here is untrained (random, seeded, frozen); see README.md.')


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    main()
