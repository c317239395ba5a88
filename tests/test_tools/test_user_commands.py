"""The user's own commands on the paper's config, literally, on the two shipped raw SUN RGB-D scenes (CPU).

    python tools/train.py configs/gsclip/pointnet2_gaf_sunrgbd.py
    python tools/test.py configs/gsclip/pointnet2_gaf_sunrgbd.py CHECKPOINT

run from a folder laid out as a clone is (``tools/``, ``configs/``, ``data/sunrgbd/``), after the README's data
steps (convert, fit the Gaussians, extract the image embeddings). ``--cfg-options`` change only what a test
must: the untrained tiny CLIP (no ViT-B/16 weights here), a few fitting steps at a small resolution, one epoch,
small loaders in the main process, and the split by object (two scenes cannot be cut 9:1 by scene).
"""
import functools
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from test_train_test import ROOT, run_tool

RAW = osp.join(ROOT, 'tests', 'data', 'sunrgbd_raw_sample')
CONFIG = 'configs/gsclip/pointnet2_gaf_sunrgbd.py'


def cfg_options():
    """The ``--cfg-options`` of every command, as ``key=value`` words; pipeline steps found by their type."""
    cfg = Config.fromfile(osp.join(ROOT, CONFIG))
    clip = dict(model_name='GSCLIP-Tiny-64', pretrained=None, clip_seed=0)
    step_options = dict(
        # the paper fits whole scenes at full resolution for 500 steps: 3 steps on a 73 x 53 image here
        FitGaussians=dict(num_steps=3, scene_scale=0.1, max_points=4096),
        LoadCLIPImageEmbedding=clip)
    opts = {f'model.head.{k}': v for k, v in clip.items()}
    opts['model.backbone.embed_dims'] = 128  # the tiny CLIP's embedding width
    opts.update({'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1})
    loaders = dict(train_dataloader='train_dataloader.dataset.dataset', val_dataloader='val_dataloader.dataset',
                   test_dataloader='test_dataloader.dataset')
    for loader, dataset in loaders.items():
        opts.update({f'{loader}.batch_size': 4, f'{loader}.num_workers': 0,
                     f'{loader}.persistent_workers': False, f'{dataset}.split_by': 'object'})
        pipeline = functools.reduce(getattr, dataset.split('.'), cfg).pipeline
        for i, step in enumerate(pipeline):
            for k, v in step_options.get(step['type'], {}).items():
                opts[f'{dataset}.pipeline.{i}.{k}'] = v
    return [f'{k}={v}' for k, v in opts.items()]


@pytest.fixture(scope='module')
def clone(tmp_path_factory):
    """A folder laid out as a clone, with the raw scenes converted, fitted and their crops embedded."""
    work = tmp_path_factory.mktemp('user')
    for name in ('tools', 'configs'):
        os.symlink(osp.join(ROOT, name), work / name)
    steps = [['tools/dataset_converters/sunrgbd_converter.py', '--root', RAW, '--out-dir', 'data/sunrgbd',
              '--workers', '1'],
             ['tools/fit_gaussians.py', CONFIG, '--cfg-options', *cfg_options()],
             ['tools/extract_image_embeddings.py', CONFIG, '--cfg-options', *cfg_options()]]
    for args in steps:
        proc = run_tool(args, cwd=work)
        assert proc.returncode == 0, (args[0], (proc.stdout + proc.stderr)[-4000:])
    return work


def test_train_then_test_the_paper_config(clone):
    proc = run_tool(['tools/train.py', CONFIG, '--work-dir', 'run', '--cfg-options', *cfg_options()], cwd=clone)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'loss_text' in log and 'loss_img' in log and 'zero_shot/overall_acc' in log
    ckpt = clone / 'run' / 'epoch_1.pth'
    state = torch.load(ckpt)['state_dict']
    # the paper's encoder: PointNet++ SSG with GAF
    assert any(k.startswith('backbone.gaf') for k in state) and 'head.logit_scale' in state

    proc = run_tool(['tools/test.py', CONFIG, str(ckpt.relative_to(clone)), '--work-dir', 'run',
                     '--cfg-options', *cfg_options()], cwd=clone)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Load checkpoint from' in log
    # Table 1's 10 classes and the 37, per object (the paper's Avg.) and per class
    for key in ('zero_shot/overall_acc', 'zero_shot/class_mean_acc', 'zero_shot37/overall_acc'):
        assert key in log, key
