"""tools/analysis_tools/downstream_eval.py: the linear probe against its closed-form optimum, k-shot draws,
misses, and the whole tool on a tiny GS-CLIP model over hand-made objects (CPU, a few seconds)."""
import importlib.util
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import BaseDataset
from mmengine.registry import DefaultScope

import gsclip_mm  # noqa: F401
from gsclip_mm.datasets import SUNRGBDObjectDataset
from gsclip_mm.registry import DATASETS, TRANSFORMS
from gsclip_mm.structures import GS_DIM, GS_OPACITY, GS_QUAT, GS_RGB, GS_SCALE, GS_XYZ

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool():
    spec = importlib.util.spec_from_file_location(
        'downstream_eval_tool', osp.join(ROOT, 'tools', 'analysis_tools', 'downstream_eval.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _tool()


@pytest.fixture(autouse=True)
def restore_default_scope():
    """The tool sets gsclip_mm's default scope (as every tool does); put the suite's back after each test."""
    saved = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


# ------------------------------------------------------------------------------------------ classifier
def test_linear_probe_reaches_the_closed_form_optimum():
    """1-D features x = +1 (class 1) and -1 (class 0), balanced. By symmetry the optimum is W = [-a, a], b = 0,
    with loss softplus(-2a) + weight_decay * a^2, so weight_decay * a = sigmoid(-2a): solved here by bisection."""
    x = torch.tensor([[1.], [-1.]]).repeat(5, 1)  # [10, 1]
    y = torch.tensor([1, 0]).repeat(5)
    for wd in (1e-2, 1e-1, 1.0):
        lo, hi = 0.0, 100.0
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if wd * mid < 1 / (1 + math.exp(2 * mid)) else (lo, mid)
        w, b = tool.fit_linear_probe(x, y, 2, wd)
        torch.testing.assert_close(w, torch.tensor([[-lo, lo]], dtype=torch.float64), rtol=0, atol=1e-6)
        torch.testing.assert_close(b, torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-9)


def test_probe_accuracy_scores_a_nan_row_as_a_miss():
    """Three well-separated clusters: every usable test object is right; the NaN row (an unusable object) is
    wrong, so overall = 8 / 9 and the class mean = (1 + 1 + 2/3) / 3."""
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(3) * 5  # [3, 3]
    y_train, y_test = torch.arange(3).repeat(4), torch.arange(3).repeat(3)
    x_train = centres[y_train] + 0.1 * torch.randn(12, 3, generator=g)
    x_test = centres[y_test] + 0.1 * torch.randn(9, 3, generator=g)
    x_test[2] = float('nan')  # a class-2 object
    acc = tool.probe_accuracy((x_train, y_train), (x_test, y_test), 3, 1e-3)
    assert acc['overall'] == pytest.approx(100 * 8 / 9) and acc['mean'] == pytest.approx(100 * (2 + 2 / 3) / 3)


def test_probe_is_invariant_to_rescaling_each_feature():
    """The probe standardises by its training set: features scaled per dimension by 1e-3 .. 1e3 and shifted give
    the same predictions (without it, the same penalty would shrink the small dimensions to nothing)."""
    g = torch.Generator().manual_seed(1)
    y = torch.arange(3).repeat(10)
    x = torch.randn(30, 4, generator=g) + torch.eye(3, 4)[y] * 1.5  # overlapping clusters: not all right
    xt, yt = torch.randn(15, 4, generator=g) + torch.eye(3, 4)[torch.arange(3).repeat(5)] * 1.5, \
        torch.arange(3).repeat(5)
    scale, shift = torch.tensor([1e-3, 1.0, 1e3, 10.0]), torch.tensor([5.0, -2.0, 0.0, 100.0])
    a = tool.probe_accuracy((x, y), (xt, yt), 3, 0.1)
    b = tool.probe_accuracy((x * scale + shift, y), (xt * scale + shift, yt), 3, 0.1)
    assert a == pytest.approx(b) and 100 / 3 < a['overall'] < 100


def test_cross_validation_picks_the_penalty_that_does_not_drown_the_minority_class():
    """40 objects of class 0 and 5 of class 1, apart on feature 0: a huge penalty leaves only the bias, which
    says class 0 (cross-validated accuracy 40 / 45); a small one separates them (45 / 45)."""
    g = torch.Generator().manual_seed(2)
    y = torch.tensor([0] * 40 + [1] * 5)
    x = torch.randn(45, 3, generator=g) * 0.1
    x[:, 0] += y * 2.0
    assert tool.choose_weight_decay((x, y), 2, [1e3, 1e-2], folds=5, seed=0) == 1e-2
    assert tool.choose_weight_decay((x, y), 2, [1e-2, 1e-3], folds=5, seed=0) == 1e-2  # a tie: the first
    assert tool.choose_weight_decay((x, y), 2, [1e3], folds=5, seed=0) == 1e3  # one choice: no fits


def test_k_shot_draws_min_k_per_class_deterministically():
    y = torch.tensor([0] * 5 + [1] * 2 + [3] * 8)  # class 2 has no object
    picked = tool.sample_k_shot(y, 3, 4, seed=0)
    assert torch.bincount(y[picked], minlength=4).tolist() == [3, 2, 0, 3]
    assert len(set(picked.tolist())) == 8
    assert torch.equal(picked, tool.sample_k_shot(y, 3, 4, seed=0))  # the same draw for every model
    assert any(not torch.equal(picked, tool.sample_k_shot(y, 3, 4, seed=s)) for s in (1, 2, 3))
    assert sorted(tool.sample_k_shot(y, 16, 4, seed=5).tolist()) == list(range(15))  # k >= n_c: all of them


# ------------------------------------------------------------------------------------------ the tool
CLASSES = ('bed', 'chair', 'sofa', 'table')
# objects per class (bed, chair, sofa, table) in each split, plus one lamp (outside the 10 classes: left out)
PER_CLASS = dict(train=(4, 3, 3, 2), val=(2, 2, 1, 1), test=(3, 2, 2, 2))


class _Objects(BaseDataset):
    """Hand-made objects: per class an ellipsoid of its own aspect and colour; the test split's first object is
    unfittable (a recorded miss)."""

    def __init__(self, split, **kwargs):
        self.split = split
        kwargs['pipeline'] = [TRANSFORMS.build(t) for t in kwargs.get('pipeline', [])]
        super().__init__(ann_file='', serialize_data=False, **kwargs)

    def load_data_list(self):
        rng = np.random.default_rng(SPLIT_SEEDS[self.split])
        out = []
        labels = [c for c, n in enumerate(PER_CLASS[self.split]) for _ in range(n)] + [-1]
        for i, label in enumerate(labels):
            g = np.zeros((64, GS_DIM), np.float32)
            d = rng.normal(size=(64, 3))
            axes = [1.0, 0.3 + 0.4 * label, 0.5] if label >= 0 else [0.2, 0.2, 1.0]
            g[:, GS_XYZ] = d / np.linalg.norm(d, axis=1, keepdims=True) * axes
            g[:, GS_RGB] = np.clip(rng.normal([0.2 * label, 0.5, 0.8 - 0.2 * label], 0.05, (64, 3)), 0, 1)
            g[:, GS_OPACITY], g[:, GS_SCALE] = 0.8, 0.03
            g[:, GS_QUAT] = [1.0, 0.0, 0.0, 0.0]
            info = dict(gaussians=g, gt_label=max(label, 0), sample_idx=i, instance_idx=0, img_path=f'{i}.jpg',
                        class_name=CLASSES[label] if label >= 0 else 'lamp')
            if self.split == 'test' and i == 0:
                info['unfittable'] = 'FitInputError: no point projects into the bbox'
            out.append(info)
        return out

    def prepare_data(self, idx):
        info = self.get_data_info(idx)
        if info.get('unfittable'):
            return SUNRGBDObjectDataset.miss_sample(info, info['unfittable'])
        return self.pipeline(info)


SPLIT_SEEDS = dict(train=0, val=1, test=2)
TINY_CFG = '''
_base_ = ['{root}/configs/gsclip/gsclip_pointnet2-tiny-gaf_1xb32-cosine-20e_synthetic.py']
model = dict(backbone=dict(sa_cfg=dict(_delete_=True, num_points=(32, 8, None), num_samples=(8, 8, None)),
                           gaf_cfg=dict(num_groups=8, group_size=8, embed_dims=32, depth=1)))
_pipeline = [dict(type='NormalizeGaussians'), dict(type='PackGSCLIPInputs')]
_aug = [dict(type='NormalizeGaussians'), dict(type='RandomGaussianAugment'), dict(type='PackGSCLIPInputs')]
train_dataloader = dict(_delete_=True, dataset=dict(type='ClassBalancedDataset', oversample_thr=0.5,
                        dataset=dict(type='DownstreamTestObjects', split='train', pipeline=_aug)))
val_dataloader = dict(_delete_=True, dataset=dict(type='DownstreamTestObjects', split='val', pipeline=_pipeline))
test_dataloader = dict(_delete_=True, dataset=dict(type='DownstreamTestObjects', split='test', pipeline=_pipeline))
'''


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory):
    DATASETS.register_module(name='DownstreamTestObjects', module=_Objects, force=True)
    path = tmp_path_factory.mktemp('downstream') / 'tiny.py'
    path.write_text(TINY_CFG.format(root=ROOT))
    return str(path)


def _run(*models, shots=(1, 4, 16), trials=3, extra=()):
    argv = [a for m in models for a in ('--model', *m)] + ['--shots', *map(str, shots), '--trials', str(trials)]
    return tool.main(argv + list(extra))


def test_tool_on_tiny_objects(tiny_config, tmp_path, capsys):
    out = tmp_path / 'table.md'
    rows = _run(('random init', tiny_config, 'none'), extra=('--out', str(out)))
    r = rows['random init']
    # the objects of the 10 classes in each split (no val: the penalty is cross-validated on train); the test
    # split keeps its unfittable object (a miss)
    assert r['counts'] == dict(train=12, test=9)
    # 16 per class takes every training object: the full linear probe, in every draw
    assert r['16-shot']['overall'] == (pytest.approx(r['linear']['overall']), pytest.approx(0.0, abs=1e-9))
    assert r['16-shot']['mean'][0] == pytest.approx(r['linear']['mean'])
    # the miss caps every accuracy at 8 / 9 of the objects
    for key in ('zero_shot', 'linear'):
        assert r[key]['overall'] <= 100 * 8 / 9 + 1e-9, key
    # the classes differ by shape and colour: even a random-init encoder's features separate most of them
    # (measured: 7 of 9; chance 1 in 4, the largest class 3 of 9)
    assert r['linear']['overall'] >= 100 * 5 / 9
    assert r['weight_decay'] in (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    text = capsys.readouterr().out
    assert '| random init | `tiny.py` |' in text and '1-shot' in text and '16-shot' in text
    assert out.read_text().strip() in text


def test_tool_loads_the_checkpoint_strictly(tiny_config, tmp_path):
    """A checkpoint of the seeded init's weights reproduces the 'none' row; a checkpoint missing a key fails."""
    cfg, model = tool.build_model(tiny_config, 'none', 0, None)
    state = model.state_dict()
    torch.save(dict(meta=dict(), state_dict=state), tmp_path / 'same.pth')
    rows = _run(('none', tiny_config, 'none'), ('ckpt', tiny_config, str(tmp_path / 'same.pth')), shots=(2, ),
                trials=2, extra=('--weight-decay', '1e-3'))
    assert rows['ckpt'] == rows['none']
    state = dict(state)
    state.pop('backbone.head.4.weight')
    torch.save(dict(meta=dict(), state_dict=state), tmp_path / 'partial.pth')
    with pytest.raises(RuntimeError, match='backbone.head.4.weight'):
        tool.build_model(tiny_config, str(tmp_path / 'partial.pth'), 0, None)
