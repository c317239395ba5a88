"""GatedDualPathAdapter (CLIP2Point's GDPA): the gate is a convex combination, only the aggregators and the
gate train, the pre-trained depth encoder loads, and the loss and its gradients at init match a hand
computation. The tiny random CLIP (64 px, 128-d) keeps it fast on a CPU."""
import math
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gsclip_mm.registry import MODELS
from gsclip_mm.structures import GSCLIPDataSample

CLIP = dict(model_name='GSCLIP-Tiny-64', pretrained=None, clip_seed=0)
CLASSES = ('bed', 'chair', 'sofa')
V, S, D = 3, 64, 128


@MODELS.register_module(force=True)
class _StandInViewEncoder(nn.Module):
    """A stand-in of CLIPDepthEncoder's interface: per-view mean colour -> linear -> unit ``[B, V, D]``."""

    def __init__(self, clip, trainable=False, aggregate='none', view_weights=None, init_cfg=None):
        super().__init__()
        assert aggregate == 'none'
        torch.manual_seed(clip['clip_seed'])
        tower = nn.Linear(3, D)
        if trainable:
            self.visual = tower
        else:
            object.__setattr__(self, '_frozen', tower.requires_grad_(False))  # outside the module tree

    def forward(self, views):  # [B, V, 3, S, S] -> [B, V, D]
        tower = self.visual if hasattr(self, 'visual') else self._frozen
        return F.normalize(tower(views.mean(dim=(-1, -2))), dim=-1)


def build(pretrained_depth=None, **kwargs):
    torch.manual_seed(0)
    cfg = dict(type='GatedDualPathAdapter', clip=CLIP, pretrained_depth=pretrained_depth, num_views=V,
               head=dict(templates=('{}', ), eval_classes=CLASSES))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def save_depth_checkpoint(path, encoder_type='CLIPDepthEncoder', noise=0.05):
    """A CLIP2Point-style pre-training checkpoint: a depth encoder (CLIP + noise) under ``depth_encoder.``."""
    enc = MODELS.build(dict(type=encoder_type, clip=CLIP, trainable=True, aggregate='none'))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(noise * torch.randn(p.shape, generator=g))
    state = {'depth_encoder.' + k: v.clone() for k, v in enc.state_dict().items()}
    state['logit_scale'] = torch.tensor(2.0)  # other parts of the pre-trainer are ignored
    torch.save(dict(state_dict=state, meta=dict()), path)
    return state


@pytest.fixture(scope='module')
def depth_ckpt(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('clip2point') / 'pretrain.pth')
    return path, save_depth_checkpoint(path)


def batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    views = torch.randn(n, V, 3, S, S, generator=g)
    samples = [GSCLIPDataSample(metainfo=dict(class_name=CLASSES[i % 3])) for i in range(n)]
    return dict(depth_views=views), samples


def test_gate_output_is_a_convex_combination_of_the_two_paths(depth_ckpt):
    model = build(depth_ckpt[0]).eval()
    inputs, _ = batch()
    with torch.no_grad():
        f_clip, f_depth = model.path_features(inputs)  # [B, D] each, unit
        assert (f_clip - f_depth).norm(dim=1).min() > 0.05  # the two paths differ: the check below means something
        for logit in (-40.0, -1.3, 0.0, 0.7, 40.0):
            model.gate_logit.fill_(logit)
            g = 1 / (1 + math.exp(-logit))
            fused = model(inputs, mode='tensor')  # [B, D]
            torch.testing.assert_close(fused, g * f_clip + (1 - g) * f_depth, atol=1e-6, rtol=0)
            # on the segment: fused - f_depth = t (f_clip - f_depth) with t = g in [0, 1]
            d = f_clip - f_depth
            t = ((fused - f_depth) * d).sum(1) / (d * d).sum(1)
            torch.testing.assert_close(t, torch.full_like(t, g), atol=1e-5, rtol=0)
            torch.testing.assert_close(fused - f_depth, t[:, None] * d, atol=1e-6, rtol=0)
        model.gate_logit.fill_(40.0)
        torch.testing.assert_close(model(inputs, mode='tensor'), f_clip, atol=1e-6, rtol=0)
        model.gate_logit.fill_(-40.0)
        torch.testing.assert_close(model(inputs, mode='tensor'), f_depth, atol=1e-6, rtol=0)


def test_only_the_aggregators_and_the_gate_get_gradients(depth_ckpt):
    model = build(depth_ckpt[0]).train()
    assert model.clip_aggregator.training and model.depth_aggregator.training
    # the frozen encoders stay in eval mode under model.train()
    assert not model.depth_encoder.training and not model.clip_encoder._frozen_visual.training
    inputs, samples = batch()
    model.gate_logit.data.fill_(0.3)  # off the symmetric point
    for agg in (model.clip_aggregator, model.depth_aggregator):
        nn.init.normal_(agg.out_layer.weight, std=0.1)  # every aggregator parameter on the gradient path
    model(inputs, samples, mode='loss')['loss_cls'].backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'gate_logit'} | {n for n, _ in model.named_parameters()
                                          if n.startswith(('clip_aggregator.', 'depth_aggregator.'))}
    for name, p in model.named_parameters():
        if name in trainable:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name  # the depth path and the head's temperature: frozen
    assert any(n.startswith('depth_encoder.visual.') for n, _ in model.named_parameters())
    # the frozen CLIP towers outside the module tree get nothing either
    for p in list(model.clip_encoder._frozen_visual.parameters()) + list(model.head.clip.parameters()):
        assert p.grad is None and not p.requires_grad
    # nothing of the CLIP path is in a checkpoint; the (frozen) depth path is
    keys = model.state_dict().keys()
    assert not any(k.startswith('clip_encoder.') for k in keys) and 'depth_encoder.visual.conv1.weight' in keys


def test_pretrained_depth_encoder_weights_load_into_the_depth_path(depth_ckpt):
    path, state = depth_ckpt
    model = build(path)
    for key in ('visual.conv1.weight', 'visual.proj'):
        saved = state['depth_encoder.' + key]
        assert torch.equal(model.depth_encoder.state_dict()[key], saved)
        # and it is not CLIP's: the CLIP path keeps the original tower
        clip_w = dict(model.clip_encoder._frozen_visual.named_parameters())[key[len('visual.'):]]
        assert not torch.equal(clip_w, saved)
    assert not model.depth_encoder.visual.conv1.weight.requires_grad
    # MMEngine's init_weights (the Runner calls it) keeps the loaded weights
    model.init_weights()
    assert torch.equal(model.depth_encoder.visual.conv1.weight, state['depth_encoder.visual.conv1.weight'])


def test_missing_checkpoint_names_the_path_and_none_starts_from_clip(tmp_path):
    missing = str(tmp_path / 'work_dirs' / 'nope.pth')
    with pytest.raises(FileNotFoundError, match=re.escape(missing) + '.*pretrained_depth=None'):
        build(missing)
    model = build(None)
    clip_w = dict(model.clip_encoder._frozen_visual.named_parameters())['conv1.weight']
    assert torch.equal(model.depth_encoder.visual.conv1.weight, clip_w)


def test_a_checkpoint_without_depth_encoder_weights_is_an_error(tmp_path):
    path = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict={'backbone.x': torch.zeros(1)}), path)
    with pytest.raises(Exception, match='depth_encoder'):
        build(path)


def test_loss_and_gradients_at_init_match_a_hand_computation(depth_ckpt):
    """Gate 0.5, aggregators = view mean at init (zero last layer): closed-form loss and gradients."""
    model = build(depth_ckpt[0]).eval()  # eval: no dropout in the hidden features used below
    inputs, samples = batch(n=5)
    out = model(inputs, samples, mode='loss')
    out['loss_cls'].backward()

    # --- by hand, from the frozen encoders' view features and the text embeddings
    v_clip, v_depth = model.view_features(inputs)  # [B, V, D]
    text = model.head.text_embeddings(CLASSES)  # [C, D]
    y = torch.tensor([i % 3 for i in range(5)])
    s = 1 / 0.07  # the random open_clip's logit scale: CLIP's inverse temperature
    assert out['logit_scale'].item() == pytest.approx(s, rel=1e-6) and out['gate'].item() == 0.5
    m_c, m_d = v_clip.mean(1), v_depth.mean(1)  # aggregator outputs at init
    n_c, n_d = m_c / m_c.norm(dim=1, keepdim=True), m_d / m_d.norm(dim=1, keepdim=True)
    u = 0.5 * n_c + 0.5 * n_d
    z = u / u.norm(dim=1, keepdim=True)
    logits = s * z @ text.t()  # [B, C]
    loss = (logits.logsumexp(1) - logits[torch.arange(5), y]).mean()
    torch.testing.assert_close(out['loss_cls'], loss, atol=1e-5, rtol=1e-5)

    # dL/dz, through z = u/|u|, u = g n_c + (1-g) n_d, n = a/|a| with a the aggregator output
    dz = s / 5 * (logits.softmax(1) - F.one_hot(y, 3).float()) @ text  # [B, D]
    du = (dz - z * (z * dz).sum(1, keepdim=True)) / u.norm(dim=1, keepdim=True)

    def d_agg(n, m):  # dL/da for a = m (the view mean), n = a/|a|, dL/dn = 0.5 du
        dn = 0.5 * du
        return (dn - n * (n * dn).sum(1, keepdim=True)) / m.norm(dim=1, keepdim=True)

    gate_grad = 0.25 * (du * (n_c - n_d)).sum()  # g (1 - g) * sum_b du . (n_c - n_d)
    torch.testing.assert_close(model.gate_logit.grad, gate_grad, atol=1e-6, rtol=1e-4)
    for agg, v, n, m in ((model.clip_aggregator, v_clip, n_c, m_c), (model.depth_aggregator, v_depth, n_d, m_d)):
        da = d_agg(n, m)  # [B, D]
        with torch.no_grad():
            h = agg.mlp[:-1](v * agg.view_weights.view(1, -1, 1))  # [B, hidden] the last layer's input
        assert agg.out_layer.weight.grad.shape == (D, h.shape[1])
        torch.testing.assert_close(agg.out_layer.bias.grad, da.sum(0), atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(agg.out_layer.weight.grad, da.t() @ h, atol=1e-6, rtol=1e-4)
        # the zero last layer blocks the gradient to everything before it, at init only
        assert agg.view_weights.grad is not None and torch.count_nonzero(agg.view_weights.grad) == 0
        assert torch.count_nonzero(agg.mlp[3].weight.grad) == 0


def test_predict_scores_the_eval_vocabulary_and_the_metric_counts_a_miss(depth_ckpt):
    from gsclip_mm.evaluation.metrics import ZeroShotAccuracy
    model = build(depth_ckpt[0]).eval()
    inputs, samples = batch(n=3)
    with torch.no_grad():
        fused = F.normalize(model(inputs, mode='tensor'), dim=-1)
        preds = model(inputs, samples, mode='predict')
    text = model.head.text_embeddings(CLASSES)
    torch.testing.assert_close(torch.stack([p.pred_score for p in preds]), fused @ text.t())
    assert all(p.metainfo['score_classes'] == CLASSES for p in preds)
    # a recorded miss at position 1 (what test_step returns for gsclip_collate's misses): scored wrong
    miss = GSCLIPDataSample(metainfo=dict(class_name='chair', unfittable='no points'))
    metric = ZeroShotAccuracy(classes=None)
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, [p.to_dict() for p in (preds[0], miss, preds[1], preds[2])])
    hits = sum(p.pred_label.item() == CLASSES.index(p.metainfo['class_name']) for p in preds)
    res = metric.compute_metrics(metric.results)
    assert res['overall_acc'] == pytest.approx(100 * hits / 4) and res['num_unfittable'] == 1
    assert [r['unfittable'] for r in metric.results] == [None, 'no points', None, None]


def test_loss_mode_edge_cases(depth_ckpt):
    model = build(depth_ckpt[0])
    inputs, samples = batch(n=2)
    with pytest.raises(ValueError, match=r"\['lamp'\] are not in the adapter's vocabulary"):
        model(inputs, [samples[0], GSCLIPDataSample(metainfo=dict(class_name='lamp'))], mode='loss')
    with pytest.raises(RuntimeError, match='invalid mode "foo"'):
        model(inputs, samples, mode='foo')
    with pytest.raises(KeyError, match="inputs\\['depth_views'\\]"):
        model(dict(gaussians=torch.zeros(2, 4, 14)), samples, mode='tensor')
    # an empty batch (a test-mode dataset's misses only) cannot train: a named error, not a silent step
    with pytest.raises(ValueError, match='GatedDualPathAdapter: a training batch with no samples'):
        model({}, [], mode='loss')


def test_the_adapter_takes_any_encoder_of_the_interface(tmp_path):
    path = str(tmp_path / 'standin.pth')
    state = save_depth_checkpoint(path, encoder_type='_StandInViewEncoder')
    model = build(path, encoder=dict(type='_StandInViewEncoder'))
    assert torch.equal(model.depth_encoder.visual.weight, state['depth_encoder.visual.weight'])
    inputs, samples = batch()
    model(inputs, samples, mode='loss')['loss_cls'].backward()
    assert model.depth_encoder.visual.weight.grad is None and model.clip_encoder._frozen.weight.grad is None
    assert model.gate_logit.grad is not None


# ----------------------------------------------------------------------------------------------- configs
def _gdpa_configs():
    import glob
    import os.path as osp
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    return sorted(glob.glob(osp.join(root, 'configs', 'clip2point', 'clip2point_gdpa_*.py')))


@pytest.mark.parametrize('path', _gdpa_configs(), ids=lambda p: p.rsplit('/', 1)[-1])
def test_gdpa_configs_train_on_k_shots_of_the_train_split_and_build(path):
    from mmengine.config import Config

    from gsclip_mm.registry import TRANSFORMS
    cfg = Config.fromfile(path)
    k = int(re.search(r'_(\d+)shot_', path).group(1))
    train = cfg.train_dataloader.dataset
    assert train.type == 'KShotDataset' and train.k == k and train.dataset.split == 'train'
    assert cfg.val_dataloader.dataset.split == 'val' and cfg.test_dataloader.dataset.split == 'test'
    assert {m['type'] for m in cfg.val_evaluator + cfg.test_evaluator} == {'ZeroShotAccuracy'}
    assert f'{k}-shot' in cfg.test_evaluator[0]['method_name']
    assert cfg.model.pretrained_depth.startswith('work_dirs/clip2point_pretrain_')
    renderer = 'RenderGaussianDepthViews' if '_gaussians_' in path else 'RenderPointDepthViews'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[loader].dataset
        types = [t['type'] for t in ds.get('dataset', ds).pipeline]
        assert renderer in types and types[-1] == 'PackGSCLIPInputs', (loader, types)
        for t in ds.get('dataset', ds).pipeline:
            assert TRANSFORMS.build(t) is not None
    model = MODELS.build(dict(cfg.model, pretrained_depth=None))
    assert model.clip_aggregator.num_views == cfg.num_views and len(model.classes) == 37
