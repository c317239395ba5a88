"""configs/clip2point: PointCLIP zero-shot (points, Gaussians), CLIP2Point pre-training and zero-shot.

Every config builds; the synthetic ones run on `make demo`'s data; a few pre-training steps train the depth
encoder and nothing frozen; its checkpoint loads into the zero-shot model with identical embeddings; and
tools/test.py scores a training-free config without a checkpoint.
"""
import os
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from mmengine.runner.checkpoint import save_checkpoint

import gsclip_mm  # noqa: F401  (fills the registries, allow-lists checkpoint types)
from gsclip_mm.registry import DATASETS, MODELS, TRANSFORMS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRETRAIN = 'clip2point_pretrain_1xb32-cosine-10e_{}.py'
ZEROSHOT = ('pointclip_points_zeroshot_{}.py', 'pointclip_gaussians_zeroshot_{}.py', 'clip2point_zeroshot_{}.py')
CONFIGS = [name.format(data) for data in ('synthetic', 'sunrgbd37') for name in (PRETRAIN, ) + ZEROSHOT]
SYNTHETIC_DATA = osp.join(ROOT, 'data', 'synthetic_sunrgbd', 'sunrgbd_infos_trainval.pkl')
needs_data = pytest.mark.skipif(not osp.isfile(SYNTHETIC_DATA), reason='make demo\'s synthetic data is absent')


def load(name):
    return Config.fromfile(osp.join(ROOT, 'configs', 'clip2point', name))


def offline(cfg):
    """A config dict with every CLIP's weights random (no ViT-B/16 weights on a test machine)."""
    if isinstance(cfg, dict):
        return {k: None if k == 'pretrained' else offline(v) for k, v in cfg.items()}
    return cfg


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds(name):
    cfg = load(name)
    model = MODELS.build(offline(cfg.model.to_dict()))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg[loader] is None:  # a training-free config has no training or validation loop
            assert loader != 'test_dataloader' and cfg.training_free
            continue
        pipeline = cfg[loader].dataset.pipeline
        for step in pipeline:
            TRANSFORMS.build(step)
        assert pipeline[-1] == dict(type='PackGSCLIPInputs', pack_gaussians=False)
    render = cfg.test_dataloader.dataset.pipeline[-2]
    assert render['type'] in ('RenderPointDepthViews', 'RenderGaussianDepthViews')
    assert (render['num_views'], render.get('pair_distance_jitter', 0.0)) == (6, 0.0)  # tests: no pair
    # the depth maps have the CLIP's input size: 64 px for the tiny CLIP, 224 for ViT-B/16
    assert render['size'] == (64 if 'synthetic' in name else 224)
    if name.startswith('clip2point_pretrain'):
        assert type(model).__name__ == 'CLIP2PointPretrainer' and cfg.get('training_free') is None
        train_render = cfg.train_dataloader.dataset.pipeline[3]
        assert train_render['pair_distance_jitter'] == 0.1  # CLIP2Point's +-10 %
        assert cfg.train_dataloader.dataset.type == 'SUNRGBDObjectDataset'  # no class balancing
        assert cfg.train_dataloader.dataset.split == 'train'
    else:
        assert type(model).__name__ == 'GSCLIP' and model.input_key == 'depth_views'
        assert cfg.training_free is True


@pytest.mark.parametrize('data', ['synthetic', 'sunrgbd37'])
def test_zeroshot_config_loads_what_the_pretraining_config_writes(data):
    pre, zs = load(PRETRAIN.format(data)), load(ZEROSHOT[2].format(data))
    init = zs.model.backbone.init_cfg
    assert init.prefix == 'depth_encoder.' and zs.model.backbone.trainable is True
    assert init.checkpoint == f'work_dirs/{PRETRAIN.format(data)[:-3]}/epoch_{pre.train_cfg.max_epochs}.pth'
    # the same CLIP, text side and vocabulary as the pre-training's validation
    assert zs.model.backbone.clip == pre.model.depth_encoder.clip
    assert {k: v for k, v in zs.model.head.items() if k != 'type'} == \
        {k: v for k, v in pre.model.head.items() if k != 'type'}


@needs_data
def test_synthetic_pipelines_give_depth_views():
    pre = load(PRETRAIN.format('synthetic'))
    sample = DATASETS.build(pre.train_dataloader.dataset)[0]
    assert sample['inputs']['depth_views'].shape == (6, 3, 64, 64)
    assert sample['inputs']['depth_views_pair'].shape == (6, 3, 64, 64)
    assert sample['inputs']['img_embed'].shape == (128, )
    for name in ZEROSHOT[:2]:
        ds = DATASETS.build(dict(load(name.format('synthetic')).test_dataloader.dataset, indices=1))
        assert set(ds[0]['inputs']) - {'norm_scale'} == {'depth_views'}


def _fake_batch(b=4, v=2, seed=0):
    """A collated batch as PackGSCLIPInputs + pseudo_collate give it: per-sample [V, 3, 64, 64] views."""
    from gsclip_mm.structures import GSCLIPDataSample
    g = torch.Generator().manual_seed(seed)
    items = [dict(inputs=dict(depth_views=torch.randn(v, 3, 64, 64, generator=g),
                              depth_views_pair=torch.randn(v, 3, 64, 64, generator=g),
                              img_embed=torch.nn.functional.normalize(torch.randn(128, generator=g), dim=0)),
                  data_samples=GSCLIPDataSample()) for _ in range(b)]
    return pseudo_collate(items)


def test_pretraining_steps_then_zero_shot_with_the_checkpoint(tmp_path):
    pre = load(PRETRAIN.format('synthetic'))
    model = MODELS.build(pre.model)
    model.init_weights()  # as the Runner does: must keep CLIP's weights
    head_clip = [p.detach().clone() for p in model.head.clip.parameters()]
    start = {k: v.clone() for k, v in model.depth_encoder.state_dict().items()}
    batch = _fake_batch()
    loss, _ = model.parse_losses(model(**model.data_preprocessor(batch, True), mode='loss'))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.depth_encoder.visual.parameters())
    model.zero_grad()
    # no weight decay: a parameter moves only by its gradient
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0))
    for _ in range(3):
        log = model.train_step(batch, wrapper)
        assert torch.isfinite(log['loss']) and set(log) >= {'loss_intra', 'loss_cross', 'loss_balance'}
    assert all(not torch.equal(v, start[k]) for k, v in model.depth_encoder.state_dict().items())
    assert all(torch.equal(p, q) for p, q in zip(model.head.clip.parameters(), head_clip))  # frozen CLIP intact
    assert all(p.grad is None for p in model.head.clip.parameters())

    ckpt = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    zs_cfg = load(ZEROSHOT[2].format('synthetic'))
    zs_cfg.model.backbone.init_cfg.checkpoint = ckpt
    zero_shot = MODELS.build(zs_cfg.model)
    zero_shot.init_weights()  # tools/test.py does this for a training-free config
    model.eval()
    with torch.no_grad():
        views = zero_shot.data_preprocessor(batch)['inputs']
        expected = model(views, mode='tensor')  # [B, D] the pre-trained encoder's view-averaged features
        got = zero_shot.backbone(views['depth_views'])
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def run_tool(args, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=osp.join(ROOT, 'tests', 'data'), OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'test.py'), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_test_tool_wants_a_checkpoint_unless_training_free(tmp_path):
    proc = run_tool([osp.join(ROOT, 'tests', 'data', 'toy_config.py'), '--work-dir', str(tmp_path)], cwd=tmp_path)
    assert proc.returncode != 0 and 'needs a checkpoint' in proc.stderr


@needs_data
def test_test_tool_scores_a_training_free_config_without_checkpoint(tmp_path):
    out = tmp_path / 'preds.pkl'
    cfg = osp.join(ROOT, 'configs', 'clip2point', ZEROSHOT[0].format('synthetic'))
    proc = run_tool([cfg, '--work-dir', str(tmp_path), '--out', str(out), '--cfg-options',
                     'test_dataloader.dataset.indices=6', 'test_dataloader.num_workers=0',
                     'test_dataloader.persistent_workers=False'], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'zero_shot/overall_acc' in proc.stdout + proc.stderr
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    # the predictions are the frozen CLIP's on these objects' depth maps, recomputed here
    config = load(ZEROSHOT[0].format('synthetic'))
    model = MODELS.build(config.model).eval()
    ds = DATASETS.build(dict(config.test_dataloader.dataset, indices=6))
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate([ds[i] for i in range(6)]))
        scores = torch.stack([s.pred_score for s in model(**data, mode='predict')])
    assert len(preds) == 6
    torch.testing.assert_close(torch.stack([p['pred_score'] for p in preds]), scores, rtol=1e-5, atol=1e-6)
