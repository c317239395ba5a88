"""CLIPDepthEncoder: the frozen (PointCLIP) and trainable (CLIP2Point) CLIP visual tower over depth views."""
import pytest
import torch
import torch.nn.functional as F

from gsclip_mm.clip.loader import build_frozen_clip, encode_images
from gsclip_mm.models.backbones import load_depth_encoder_weights
from gsclip_mm.registry import MODELS

CLIP = dict(model_name='GSCLIP-Tiny-64', pretrained=None, clip_seed=0)  # 64 px input, D = 128
DEFAULT_ARGS = dict(type='CLIPDepthEncoder', clip=CLIP)


def views(b=2, v=3, seed=0):
    return torch.randn(b, v, 3, 64, 64, generator=torch.Generator().manual_seed(seed))  # [B, V, 3, S, S]


@pytest.fixture(scope='module')
def reference_clip():
    return build_frozen_clip(**CLIP)  # the same seeded weights, built independently


def test_frozen_mean_is_the_normalised_mean_of_unit_view_features(reference_clip):
    enc = MODELS.build(DEFAULT_ARGS)
    x = views()
    per_view = encode_images(reference_clip, x.flatten(0, 1)).view(2, 3, -1)  # [B, V, D] unit
    expected = F.normalize(per_view.mean(1), dim=-1)
    out = enc(x)
    assert out.shape == (2, 128)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    # view 0 alone is not the answer (the mean really mixes views)
    assert not torch.allclose(out, per_view[:, 0], atol=1e-3)


def test_frozen_encoder_is_outside_the_module_tree():
    enc = MODELS.build(DEFAULT_ARGS)
    assert list(enc.parameters()) == [] and enc.state_dict() == {}
    enc.train()
    assert not enc._frozen_visual.training  # stays in eval mode
    x = views().requires_grad_()
    assert not enc(x).requires_grad  # nothing to train, no graph kept


def test_aggregate_none_and_view_weights(reference_clip):
    x = views()
    per_view = encode_images(reference_clip, x.flatten(0, 1)).view(2, 3, -1)
    none = MODELS.build(dict(DEFAULT_ARGS, aggregate='none'))(x)
    assert none.shape == (2, 3, 128)
    torch.testing.assert_close(none, per_view, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(none.norm(dim=-1), torch.ones(2, 3))
    # weights (0, 1, 0): the view-1 feature itself; (1, 3, 0): normalised f0 + 3 f1
    only1 = MODELS.build(dict(DEFAULT_ARGS, view_weights=(0, 1, 0)))(x)
    torch.testing.assert_close(only1, per_view[:, 1], rtol=1e-5, atol=1e-6)
    mixed = MODELS.build(dict(DEFAULT_ARGS, view_weights=(1, 3, 0)))(x)
    torch.testing.assert_close(mixed, F.normalize(per_view[:, 0] + 3 * per_view[:, 1], dim=-1), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(ValueError, match='2 view_weights for 3 views'):
        MODELS.build(dict(DEFAULT_ARGS, view_weights=(1, 1)))(x)


def test_trainable_copy_starts_at_clip_and_learns():
    frozen = MODELS.build(DEFAULT_ARGS)
    enc = MODELS.build(dict(DEFAULT_ARGS, trainable=True))
    keys = list(enc.state_dict())
    assert keys and all(k.startswith('visual.') for k in keys)  # the prefix checkpoints carry
    x = views()
    torch.testing.assert_close(enc(x), frozen(x), rtol=1e-5, atol=1e-6)  # initialised from CLIP
    enc(x).sum().backward()
    grads = [p.grad for p in enc.visual.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    # its own copy: training it leaves a frozen CLIP of the same seed untouched
    with torch.no_grad():
        enc.visual.proj.mul_(-1.0)  # negates every feature
    torch.testing.assert_close(enc(x), -frozen(x), rtol=1e-5, atol=1e-6)


def _perturbed_checkpoint(tmp_path, prefix):
    enc = MODELS.build(dict(DEFAULT_ARGS, trainable=True))
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    path = tmp_path / 'pretrain.pth'
    state = {prefix + k: v for k, v in enc.state_dict().items()}
    state['head.logit_scale'] = torch.tensor(2.0)  # another module's key: ignored by the prefix
    torch.save(dict(state_dict=state, meta=dict()), path)
    return enc, str(path)


def test_init_cfg_pretrained_loads_the_pretrainers_depth_encoder(tmp_path):
    trained, path = _perturbed_checkpoint(tmp_path, 'depth_encoder.')
    enc = MODELS.build(dict(DEFAULT_ARGS, trainable=True,
                            init_cfg=dict(type='Pretrained', checkpoint=path, prefix='depth_encoder.')))
    x = views()
    assert not torch.allclose(enc(x), trained(x), atol=1e-4)  # not loaded at construction
    enc.init_weights()
    for k, v in trained.state_dict().items():
        torch.testing.assert_close(enc.state_dict()[k], v, rtol=0, atol=0)
    torch.testing.assert_close(enc(x), trained(x), rtol=0, atol=0)


def test_loading_is_strict(tmp_path):
    _, path = _perturbed_checkpoint(tmp_path, 'backbone.')
    enc = MODELS.build(dict(DEFAULT_ARGS, trainable=True))
    with pytest.raises(Exception, match='depth_encoder'):  # no key under that prefix
        load_depth_encoder_weights(enc, path, 'depth_encoder.')
    load_depth_encoder_weights(enc, path, 'backbone.')  # a GSCLIP checkpoint's prefix
    state = torch.load(path)['state_dict']
    del state['backbone.visual.proj']
    torch.save(dict(state_dict=state), path)
    with pytest.raises(RuntimeError, match='visual.proj'):
        load_depth_encoder_weights(enc, path, 'backbone.')


def test_bad_arguments():
    with pytest.raises(ValueError, match='aggregate'):
        MODELS.build(dict(DEFAULT_ARGS, aggregate='max'))
    with pytest.raises(ValueError, match='trainable=True'):
        MODELS.build(dict(DEFAULT_ARGS, init_cfg=dict(type='Pretrained', checkpoint='x.pth')))
    with pytest.raises(AssertionError, match=r'\(2, 3, 64, 64\)'):
        MODELS.build(DEFAULT_ARGS)(torch.zeros(2, 3, 64, 64))
