"""Every shipped config parses and builds; the paper config keeps the paper's settings; the Table 2 rows and the
baseline differ from GS-CLIP exactly where the paper says; no config lets the test split into training or
checkpoint selection."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from gsclip_mm.registry import MODELS, TRANSFORMS
from gsclip_mm.structures.categories import SUNRGBD37_CLASSES, SUNRGBD_TABLE1_ORDER

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'gsclip', '*.py')))
PAPER = 'gsclip_pointnet2-ssg-gaf_1xb32-cosine-100e_sunrgbd37.py'
DEMO = 'gsclip_pointnet2-tiny-gaf_1xb32-cosine-20e_synthetic.py'
# The names users are given (README, tools/demo.py, make demo) beside the OpenMMLab names of metafile.yml.
USER_NAMES = {'pointnet2_gaf_sunrgbd.py': PAPER, 'pointnet2_gaf_synthetic.py': DEMO}
MAIN = dict(sunrgbd37=PAPER, synthetic=DEMO)


def load(name):
    return Config.fromfile(osp.join(ROOT, 'configs', 'gsclip', name))


def inner_dataset(cfg):
    ds = cfg.train_dataloader.dataset
    return ds.get('dataset', ds)


def pipeline_types(cfg):
    return [t['type'] for t in inner_dataset(cfg).pipeline]


def variants(data):
    """The Table 2 rows and the baseline of one dataset, by their switches."""
    stem = MAIN[data].replace('-gaf_', '_')
    return dict(
        balance=load(stem.replace('.py', '_tab2-balance.py')),
        imgloss=load(stem.replace('.py', '_tab2-imgloss.py')),
        gaf=load(MAIN[data].replace('.py', '_tab2-gaf.py')),
        balance_imgloss=load(stem.replace('.py', '_tab2-balance-imgloss.py')),
        full=load(MAIN[data]))


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_config_parses_and_its_pipelines_build(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'gsclip_mm' and cfg.model.type == 'GSCLIP'
    assert [m['type'] for m in cfg.test_evaluator] == ['ZeroShotAccuracy', 'ZeroShotAccuracy']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[loader].dataset
        for t in ds.get('dataset', ds).pipeline:
            if t['type'] == 'LoadCLIPImageEmbedding' and t.get('pretrained') == 'openai':
                continue  # building it loads ViT-B-16's weights, which this machine does not have
            assert TRANSFORMS.build(t) is not None, (loader, t)
    assert cfg.train_dataloader.collate_fn.type == 'gsclip_collate'


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_the_test_split_reaches_neither_training_nor_checkpoint_selection(path):
    cfg = Config.fromfile(path)
    train, val, test = inner_dataset(cfg), cfg.val_dataloader.dataset, cfg.test_dataloader.dataset
    assert (train.split, val.split, test.split) == ('train', 'val', 'test')
    # one pool, one cut: the same file, ratio, unit and seed on every side
    for key in ('ann_file', 'data_root', 'split_ratio', 'val_ratio', 'split_by', 'split_seed'):
        assert train[key] == val[key] == test[key], key
    # the same object filters on every split
    for key in ('min_points', 'min_box_side'):
        assert train[key] == val[key] == test[key], key
    # checkpoints are kept by a validation metric (the val split), never by the test loop
    assert cfg.default_hooks.checkpoint.save_best == 'zero_shot/overall_acc'
    assert cfg.val_evaluator[0].get('prefix') is None and cfg.val_evaluator[0].classes == 'sunrgbd10'


def test_paper_config_keeps_paper_settings():
    cfg = load(PAPER)
    fit = next(t for t in inner_dataset(cfg).pipeline if t['type'] == 'FitGaussians')
    assert (fit['num_steps'], fit['opacity_reset_interval']) == (500, 50)  # 5.1
    assert (cfg.model.head.loss_text_weight, cfg.model.head.loss_img_weight) == (0.5, 0.5)  # eq. 10
    assert cfg.train_dataloader.dataset.type == 'ClassBalancedDataset'
    assert cfg.model.backbone.with_gaf and len(cfg.model.backbone.in_features) == 5
    assert inner_dataset(cfg).split_ratio == 0.9  # 9:1, 5.1
    # trained on the 37 classes (the converter's infos name them), zero-shot on the 10 of Table 1 and the 37
    assert inner_dataset(cfg).get('metainfo') is None and cfg.model.head.eval_classes == 'sunrgbd37'
    assert [m.classes for m in cfg.test_evaluator] == ['sunrgbd10', None]
    # PointNet++ SSG at its standard sizes
    assert cfg.model.backbone.sa_cfg.num_points == (512, 128, None)
    assert cfg.model.backbone.sa_cfg.mlp_channels[-1] == (256, 512, 1024)


@pytest.mark.parametrize('data', ['synthetic', 'sunrgbd37'])
def test_table2_rows_and_baseline_change_only_their_switches(data):
    v = variants(data)
    full = v['full']

    def switches(cfg):
        return (cfg.train_dataloader.dataset.type == 'ClassBalancedDataset', cfg.model.head.loss_img_weight > 0,
                cfg.model.backbone.with_gaf)

    assert switches(full) == (True, True, True)
    assert switches(v['balance']) == (True, False, False)
    assert switches(v['imgloss']) == (False, True, False)
    assert switches(v['gaf']) == (False, False, True)
    assert switches(v['balance_imgloss']) == (True, True, False)
    for name, cfg in v.items():
        # dropping the image term keeps the text weight (eq. 10 without its second term)
        assert cfg.model.head.loss_text_weight == 0.5, name
        img_step = 'LoadCLIPImageEmbedding' in pipeline_types(cfg)
        assert img_step == (cfg.model.head.loss_img_weight > 0), name
        # everything else of the training data is GS-CLIP's
        assert [t for t in inner_dataset(cfg).pipeline if t['type'] != 'LoadCLIPImageEmbedding'] == \
            [t for t in inner_dataset(full).pipeline if t['type'] != 'LoadCLIPImageEmbedding'], name
        assert cfg.test_dataloader == full.test_dataloader, name
    base = load(MAIN[data].replace('gsclip_', 'clip2_').replace('-gaf_', '_'))
    # The CLIP^2-style baseline: points' xyz + rgb, no fitting, no GAF, same balance.
    assert 'FitGaussians' in pipeline_types(full) and 'FitGaussians' not in pipeline_types(base)
    assert 'PointsToGaussians' in pipeline_types(base)
    assert tuple(base.model.backbone.in_features) == ('xyz', 'rgb') and not base.model.backbone.with_gaf
    assert base.train_dataloader.dataset.type == 'ClassBalancedDataset'


def test_synthetic_model_builds_embeds_and_scores_the_37_classes():
    cfg = load(DEMO)
    model = MODELS.build(cfg.model)
    assert model.head.eval_classes == SUNRGBD37_CLASSES and set(SUNRGBD_TABLE1_ORDER) <= set(SUNRGBD37_CLASSES)
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
    assert steps[0]['cache_only'] == ('synthetic' not in osp.basename(path))  # the paper's data: extracted ahead


def test_metafile_names_existing_configs_and_the_readme_lists_them():
    import yaml
    meta = yaml.safe_load(open(osp.join(ROOT, 'configs', 'gsclip', 'metafile.yml')))
    for model in meta['Models']:
        assert osp.isfile(osp.join(ROOT, model['Config'])), model['Config']
        assert osp.basename(model['Config']) == model['Name'] + '.py'
    readme = open(osp.join(ROOT, 'configs', 'gsclip', 'README.md')).read()
    for path in CONFIGS:
        name = osp.basename(path)
        if 'sunrgbd37' in name:
            assert name in readme or name.split('_tab2')[-1] in readme, name


@pytest.mark.parametrize('short', sorted(USER_NAMES))
def test_the_user_names_are_the_openmmlab_configs(short):
    """One source of settings: the short name and the OpenMMLab name resolve to the same config."""
    a, b = load(short), load(USER_NAMES[short])
    assert a.to_dict() == b.to_dict() and a.filename != b.filename
    # and a few settings each stands for
    if 'sunrgbd' in short:
        assert a.model.backbone.embed_dims == 512 and inner_dataset(a).split_ratio == 0.9
    else:
        assert a.model.head.model_name == 'GSCLIP-Tiny-64' and a.train_cfg.max_epochs == 20


def test_each_table2_row_and_the_baseline_is_written_once():
    """A row's or the baseline's config holds no settings of its own: it names its row (config_variants.py)."""
    for path in CONFIGS:
        name = osp.basename(path)
        if '_tab2-' in name or name.startswith('clip2_'):
            code = [line for line in open(path) if line.strip() and not line.startswith('#')]
            assert len(code) <= 5, (name, code)
            assert 'config_variants import' in ''.join(code), name
