"""CLIP2PointPretrainer: its two NT-Xent terms recomputed independently, gradients, keys, zero-shot predict."""
import math

import pytest
import torch
import torch.nn.functional as F

from gsclip_mm.models.losses import nt_xent
from gsclip_mm.registry import MODELS
from gsclip_mm.structures import GSCLIPDataSample

CLIP = dict(model_name='GSCLIP-Tiny-64', pretrained=None, clip_seed=0)  # 64 px input, D = 128
DEFAULT_ARGS = dict(
    type='CLIP2PointPretrainer',
    depth_encoder=dict(type='CLIPDepthEncoder', clip=CLIP, trainable=True),
    head=dict(type='FrozenCLIPHead', **CLIP, templates=('{}', ), learn_logit_scale=False,
              eval_classes=('chair', 'table', 'sofa')))
B, V = 4, 2


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(depth_views=torch.randn(B, V, 3, 64, 64, generator=g),
                depth_views_pair=torch.randn(B, V, 3, 64, 64, generator=g),
                img_embed=F.normalize(torch.randn(B, 128, generator=g), dim=-1))


@pytest.fixture(scope='module')
def reference():
    """Per-view unit features of the untouched CLIP visual tower (the encoder's initial weights)."""
    enc = MODELS.build(dict(type='CLIPDepthEncoder', clip=CLIP, aggregate='none'))
    x = batch()
    return enc(x['depth_views']), enc(x['depth_views_pair']), x['img_embed']  # [B, V, D] x2, [B, D]


def test_losses_match_an_independent_computation(reference):
    f1, f2, img = reference
    model = MODELS.build(DEFAULT_ARGS)
    losses = model(batch(), [GSCLIPDataSample() for _ in range(B)], mode='loss')
    assert set(losses) == {'loss_intra', 'loss_cross', 'loss_balance', 'balance_weight'}
    # intra, per view (the paper's pairing): mean over v of NT-Xent(view v of render 1, view v of render 2)
    intra = (nt_xent(f1[:, 0], f2[:, 0], 0.07) + nt_xent(f1[:, 1], f2[:, 1], 0.07)) / 2
    # cross: image vs the mean of both renders' view-averaged features
    depth = F.normalize(F.normalize(f1.mean(1), dim=-1) + F.normalize(f2.mean(1), dim=-1), dim=-1)
    cross = nt_xent(depth, img, 0.07)
    # learned balance at its start w = 1 (authors' code): intra / 1^2 and log(1 + 1)
    assert losses['loss_intra'].item() == pytest.approx(intra.item(), rel=1e-5)
    assert losses['loss_cross'].item() == pytest.approx(cross.item(), rel=1e-5)
    assert losses['loss_balance'].item() == pytest.approx(math.log(2.0))
    assert losses['balance_weight'].item() == 1.0 and not losses['balance_weight'].requires_grad


def test_fixed_weights_and_the_other_pairings(reference):
    f1, f2, img = reference
    model = MODELS.build(dict(DEFAULT_ARGS, learn_balance=False, loss_intra_weight=2.0, loss_cross_weight=0.5,
                              intra_per_view=False, cross_with_pair=False))
    losses = model(batch(), None, mode='loss')
    assert set(losses) == {'loss_intra', 'loss_cross'} and model.balance_weight is None
    m1, m2 = F.normalize(f1.mean(1), dim=-1), F.normalize(f2.mean(1), dim=-1)
    assert losses['loss_intra'].item() == pytest.approx(2.0 * nt_xent(m1, m2, 0.07).item(), rel=1e-5)
    assert losses['loss_cross'].item() == pytest.approx(0.5 * nt_xent(m1, img, 0.07).item(), rel=1e-5)


def test_gradients_reach_the_depth_encoder_only():
    model = MODELS.build(DEFAULT_ARGS)
    losses = model(batch(), None, mode='loss')
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    visual = list(model.depth_encoder.visual.parameters())
    assert all(p.grad is not None for p in visual) and sum(p.grad.abs().sum() for p in visual) > 0
    assert model.balance_weight.grad is not None
    # the frozen CLIP (the head's, outside the module tree) gets nothing; the head learns nothing here
    assert all(p.grad is None and not p.requires_grad for p in model.head.clip.parameters())
    assert [n for n, p in model.named_parameters() if p.requires_grad and not n.startswith('depth_encoder.visual.')
            ] == ['balance_weight']


def test_checkpoint_keys_are_the_depth_encoders():
    keys = set(MODELS.build(DEFAULT_ARGS).state_dict())
    assert {k for k in keys if not k.startswith('depth_encoder.visual.')} == {'head.logit_scale', 'balance_weight'}
    assert 'depth_encoder.visual.proj' in keys


def test_predict_scores_depth_features_against_the_text_embeddings(reference):
    f1 = reference[0]
    model = MODELS.build(DEFAULT_ARGS).eval()
    samples = model(batch(), [GSCLIPDataSample() for _ in range(B)], mode='predict')
    text = model.head.text_embeddings(['chair', 'table', 'sofa'])  # [3, D] unit
    expected = F.normalize(f1.mean(1), dim=-1) @ text.t()  # [B, 3]
    got = torch.stack([s.pred_score for s in samples])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert model(batch(), mode='tensor').shape == (B, 128)


def test_bad_setups():
    with pytest.raises(ValueError, match='trainable=True'):
        MODELS.build(dict(DEFAULT_ARGS, depth_encoder=dict(type='CLIPDepthEncoder', clip=CLIP)))
    model = MODELS.build(DEFAULT_ARGS)
    x = batch()
    del x['depth_views_pair']
    with pytest.raises(KeyError, match='pair_distance_jitter'):
        model(x, None, mode='loss')
    with pytest.raises(RuntimeError, match='invalid mode'):
        model(batch(), None, mode='lossy')
