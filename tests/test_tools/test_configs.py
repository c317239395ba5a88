"""Every shipped config parses; the ablations differ from GS-CLIP exactly where the paper says."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from gsclip_mm.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'gsclip', '*.py')))


def load(name):
    return Config.fromfile(osp.join(ROOT, 'configs', 'gsclip', name))


def inner_dataset(cfg):
    ds = cfg.train_dataloader.dataset
    return ds.get('dataset', ds)


def pipeline_types(cfg):
    return [t['type'] for t in inner_dataset(cfg).pipeline]


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_config_parses_with_default_scope(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'gsclip_mm'
    assert cfg.model.type == 'GSCLIP'
    assert 'ZeroShotAccuracy' == cfg.test_evaluator.type


def test_paper_config_keeps_paper_settings():
    cfg = load('pointnet2_gaf_sunrgbd.py')
    fit = next(t for t in inner_dataset(cfg).pipeline if t['type'] == 'FitGaussians')
    assert (fit['num_steps'], fit['opacity_reset_interval']) == (500, 50)
    assert cfg.model.head.model_name == 'ViT-B-16'
    assert (cfg.model.head.loss_text_weight, cfg.model.head.loss_img_weight) == (0.5, 0.5)
    assert cfg.train_dataloader.dataset.type == 'ClassBalancedDataset'
    assert cfg.model.backbone.with_gaf and len(cfg.model.backbone.in_features) == 5


@pytest.mark.parametrize('data', ['synthetic', 'sunrgbd'])
def test_ablations_change_one_thing(data):
    full = load(f'pointnet2_gaf_{data}.py')
    no_gaf = load(f'pointnet2_gaf_{data}_no-gaf.py')
    no_bal = load(f'pointnet2_gaf_{data}_no-balance.py')
    no_img = load(f'pointnet2_gaf_{data}_no-img-loss.py')
    base = load(f'pointnet2_clip2_{data}.py')
    assert full.model.backbone.with_gaf and not no_gaf.model.backbone.with_gaf
    assert no_gaf.model.head == full.model.head
    assert no_bal.train_dataloader.dataset.type == 'SUNRGBDObjectDataset'
    assert inner_dataset(no_bal).pipeline == inner_dataset(full).pipeline
    assert no_img.model.head.loss_img_weight == 0.0 and no_img.model.backbone == full.model.backbone
    # The CLIP^2-style baseline: points' xyz + rgb, no fitting, no GAF, same balance.
    assert 'FitGaussians' in pipeline_types(full) and 'FitGaussians' not in pipeline_types(base)
    assert 'PointsToGaussians' in pipeline_types(base)
    assert tuple(base.model.backbone.in_features) == ('xyz', 'rgb') and not base.model.backbone.with_gaf
    assert base.train_dataloader.dataset.type == 'ClassBalancedDataset'


def test_synthetic_model_builds_and_embeds():
    cfg = load('pointnet2_gaf_synthetic.py')
    model = MODELS.build(cfg.model)
    gaussians = torch.rand(2, 512, 14)
    out = model(dict(gaussians=gaussians, norm_scale=torch.tensor([[0.4], [1.1]])), mode='tensor')
    assert out.shape == (2, cfg.model.backbone.embed_dims)
    # The synthetic config feeds the object size: two sizes, two embeddings.
    assert not torch.allclose(out[0], model(dict(gaussians=gaussians[[0, 0]], norm_scale=torch.tensor(
        [[0.4], [1.1]])), mode='tensor')[1])


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_the_image_embeddings_come_from_the_heads_clip(path):
    """One `clip` setting feeds the head and the training pipeline's LoadCLIPImageEmbedding; no image loss, no step."""
    cfg = Config.fromfile(path)
    steps = [t for t in inner_dataset(cfg).pipeline if t['type'] == 'LoadCLIPImageEmbedding']
    assert not any(t['type'] == 'LoadCLIPImageEmbedding' for t in cfg.test_dataloader.dataset.pipeline)
    if cfg.model.head.loss_img_weight == 0:
        assert steps == []
        return
    assert len(steps) == 1 and inner_dataset(cfg).pipeline[-2] == steps[0]  # just before PackGSCLIPInputs
    for key in ('model_name', 'pretrained', 'clip_seed', 'clip_cache_dir'):
        assert steps[0].get(key) == cfg.model.head.get(key) == cfg.clip.get(key), key
    assert steps[0]['cache_only'] == ('sunrgbd' in osp.basename(path))  # the paper's data: extracted ahead
