"""PointNet2GAF: output shapes, gradients, the fusion rule, input layouts, and
building it through our registry and from another project's scope."""
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

from gsclip_mm.models.backbones import PointNet2GAF
from gsclip_mm.registry import MODELS
from gsclip_mm.structures import GS_DIM, GS_FEATURES

SSG = dict(num_points=(32, 8, None), radii=(0.4, 0.8, None), num_samples=(8, 8, None),
           mlp_channels=((8, 8, 16), (16, 16, 32), (32, 40)))
MSG = dict(num_points=(32, 8, None), radii=((0.3, 0.6), (0.6, 1.0), None), num_samples=((4, 8), (4, 8), None),
           mlp_channels=(((8, 8), (8, 12)), ((16, 16), (16, 24)), (32, 40)))
GAF = dict(num_groups=8, group_size=8, embed_dims=16, depth=1, num_heads=2)
DEFAULT_ARGS = dict(type='PointNet2GAF', sa_cfg=SSG, gaf_cfg=GAF, embed_dims=24)
B, N = 2, 64

# (sa_cfg, widths of the three levels)
VARIANTS = [(SSG, (16, 32, 40)), (MSG, (8 + 12, 16 + 24, 40))]


def _gaussians(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, N, GS_DIM, generator=g)  # [B, N, 14]
    x[..., GS_FEATURES['xyz']] = x[..., GS_FEATURES['xyz']] * 2 - 1
    return x


def _build(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(dict(DEFAULT_ARGS, **kwargs))


@pytest.mark.parametrize('with_gaf', [True, False])
@pytest.mark.parametrize('sa_cfg,widths', VARIANTS)
def test_output_shapes_and_values(sa_cfg, widths, with_gaf):
    model = _build(sa_cfg=sa_cfg, with_gaf=with_gaf)
    assert isinstance(model, PointNet2GAF) and (model.gaf is not None) == with_gaf
    x = _gaussians()
    out = model(x)
    assert [tuple(t.shape) for t in out['sa_xyz']] == [(B, 32, 3), (B, 8, 3), (B, 1, 3)]
    assert [tuple(t.shape) for t in out['sa_features']] == [(B, widths[0], 32), (B, widths[1], 8), (B, widths[2], 1)]
    assert out['global_feat'].shape == (B, widths[2]) and out['embedding'].shape == (B, 24)
    # FPS starts at point 0 and the centres are input positions.
    torch.testing.assert_close(out['sa_xyz'][0][:, 0], x[:, 0, :3])
    d = (out['sa_xyz'][0][:, :, None] - x[:, None, :, :3]).abs().sum(-1)  # [B, 32, N]
    assert d.min(dim=-1).values.max() == 0
    torch.testing.assert_close(out['global_feat'], out['sa_features'][-1].amax(dim=-1))
    assert torch.isfinite(out['embedding']).all()


@pytest.mark.parametrize('with_gaf', [True, False])
def test_embedding_is_head_of_residual_fusion(with_gaf):
    model = _build(with_gaf=with_gaf).eval()
    x = _gaussians()
    with torch.no_grad():
        out = model(x)
        fused = out['global_feat']
        if with_gaf:
            gaf_global, gaf_shape = model.gaf(x[..., :3].contiguous(), x[..., 3:].contiguous())
            assert gaf_global.shape == gaf_shape.shape == (B, 40)
            fused = fused + gaf_global + gaf_shape
        torch.testing.assert_close(out['embedding'], model.head(fused))


@pytest.mark.parametrize('with_gaf', [True, False])
@pytest.mark.parametrize('sa_cfg', [SSG, MSG])
def test_gradients_reach_all_gaussian_features_and_parameters(sa_cfg, with_gaf):
    model = _build(sa_cfg=sa_cfg, with_gaf=with_gaf)
    x = _gaussians().requires_grad_(True)
    model(x)['embedding'].square().sum().backward()
    for name, cols in GS_FEATURES.items():
        assert x.grad[..., cols].abs().sum() > 0, f'no gradient reaches {name}'
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f'parameters without gradient: {missing}'


def test_baseline_uses_only_xyz_and_rgb():
    """with_gaf=False + ('xyz', 'rgb'): the CLIP^2-style baseline ignores the other columns."""
    model = _build(with_gaf=False, in_features=('xyz', 'rgb'))
    x = _gaussians().requires_grad_(True)
    out = model(x)
    out['embedding'].sum().backward()
    assert x.grad[..., :6].abs().sum() > 0
    assert torch.equal(x.grad[..., 6:], torch.zeros_like(x.grad[..., 6:]))
    y = x.detach().clone()
    y[..., 6:] = torch.rand_like(y[..., 6:])  # new opacity / scale / rotation: same output
    torch.testing.assert_close(model(y)['embedding'], out['embedding'])


def test_feature_subset_selects_columns():
    """in_features=('xyz', 'scale') sees exactly xyz and the scale columns, in any listed order."""
    a = _build(in_features=('xyz', 'scale'))
    b = _build(in_features=('scale', 'xyz'))
    assert a.in_channels == 6 and a.feature_columns == [0, 1, 2, 7, 8, 9]
    x = _gaussians()
    torch.testing.assert_close(a(x)['embedding'], b(x)['embedding'])
    x2 = x.clone()
    x2[..., GS_FEATURES['scale']] += 1.
    assert not torch.allclose(a(x2)['embedding'], a(x)['embedding'])


@pytest.mark.parametrize('in_channels', [3, 6])
@pytest.mark.parametrize('with_gaf', [True, False])
def test_plain_point_cloud_input(in_channels, with_gaf):
    model = _build(in_channels=in_channels, with_gaf=with_gaf)
    x = _gaussians()[..., :in_channels].clone().requires_grad_(True)  # [B, N, 3 | 6]
    out = model(x)
    assert [tuple(t.shape) for t in out['sa_features']] == [(B, 16, 32), (B, 32, 8), (B, 40, 1)]
    assert out['embedding'].shape == (B, 24)
    out['embedding'].sum().backward()
    assert x.grad.abs().sum(dim=(0, 1)).gt(0).all()  # every input channel gets a gradient
    with pytest.raises(ValueError, match=f'in_channels={in_channels}'):
        model(_gaussians())


def test_positions_only_gaussians_with_gaf():
    """in_features=('xyz',): no per-point features; GAF groups offsets only."""
    model = _build(in_features=('xyz', ))
    x = _gaussians().requires_grad_(True)
    model(x)['embedding'].sum().backward()
    assert x.grad[..., :3].abs().sum() > 0
    assert torch.equal(x.grad[..., 3:], torch.zeros_like(x.grad[..., 3:]))


def test_fewer_points_than_centres_is_a_clear_error():
    with pytest.raises(ValueError, match=r'num_points must be in \[1, N=16\]'):
        _build()(_gaussians()[:, :16])


def test_bad_configs_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match='not both'):
        PointNet2GAF(in_features=('xyz', ), in_channels=3)
    with pytest.raises(ValueError, match="including 'xyz'"):
        PointNet2GAF(in_features=('rgb', ))
    with pytest.raises(ValueError, match='including'):
        PointNet2GAF(in_features=('xyz', 'colour'))
    with pytest.raises(ValueError, match='in_channels must be >= 3'):
        PointNet2GAF(in_channels=2)
    with pytest.raises(ValueError, match='unknown sa_cfg keys'):
        PointNet2GAF(sa_cfg=dict(radius=(0.2, )))
    with pytest.raises(ValueError, match='one entry per level'):
        PointNet2GAF(sa_cfg=dict(num_points=(16, None), radii=(0.2, None), num_samples=(8, ),
                                 mlp_channels=((8, ), (16, ))))
    with pytest.raises(ValueError, match=r'Gaussians \[B, N, 14\]'):
        _build()(torch.zeros(B, N, 6))


def test_default_config_builds_and_runs():
    model = MODELS.build(dict(type='PointNet2GAF'))  # paper-sized defaults, 512-wide embedding
    out = model(_gaussians()[:, :, :].repeat(1, 4, 1))  # [B, 256, 14]
    assert out['embedding'].shape == (B, 512)
    assert [t.shape[1] for t in out['sa_xyz']] == [256, 64, 1]


def test_build_from_another_scope_with_custom_imports(tmp_path):
    """Another MMEngine project names the backbone as 'gsclip_mm.PointNet2GAF'."""
    cfg_file = tmp_path / 'other_project_cfg.py'
    cfg_file.write_text(textwrap.dedent(f"""
        custom_imports = dict(imports=['gsclip_mm'], allow_failed_imports=False)
        model = dict(type='gsclip_mm.PointNet2GAF', in_channels=6, sa_cfg={SSG!r}, gaf_cfg={GAF!r},
                     embed_dims=24)
        """))
    cfg = Config.fromfile(str(cfg_file))  # runs custom_imports
    scope = 'otherproj_gsclip_test'
    other = MMENGINE_MODELS.children.get(scope) or Registry('model', parent=MMENGINE_MODELS, scope=scope)
    model = other.build(cfg.model)
    assert type(model) is PointNet2GAF and model.in_channels == 6
    assert model(torch.rand(B, N, 6))['embedding'].shape == (B, 24)


def test_size_input_changes_embedding_and_gets_gradient():
    model = _build(with_size=True)
    x = _gaussians()
    small, large = torch.full((B, 1), 0.3), torch.full((B, 1), 1.2)
    emb_small = model(x, norm_scale=small)['embedding']
    emb_large = model(x, norm_scale=large)['embedding']
    assert not torch.allclose(emb_small, emb_large)
    # The size enters as an additive embedding of log(radius), before the head.
    fused = model(x, norm_scale=small)['global_feat'] + sum(model.gaf(*model._split_input(x)))
    torch.testing.assert_close(emb_small, model.head(fused + model.size_embed(small.log())))
    emb_small.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.size_embed.parameters())
    with pytest.raises(ValueError, match='norm_scale'):
        model(x)


def test_gsclip_feeds_norm_scale_to_a_with_size_backbone():
    from gsclip_mm.models.heads import FrozenCLIPHead  # noqa: F401  (registers the head)
    model = MODELS.build(dict(
        type='GSCLIP', backbone=dict(DEFAULT_ARGS, with_size=True, embed_dims=128),
        head=dict(type='FrozenCLIPHead', model_name='GSCLIP-Tiny-64')))
    x = _gaussians()
    a = model.extract_feat(dict(gaussians=x, norm_scale=torch.full((B, 1), 0.3)))
    b = model.extract_feat(dict(gaussians=x, norm_scale=torch.full((B, 1), 1.2)))
    assert a.shape == (B, 128) and not torch.allclose(a, b)
    with pytest.raises(KeyError, match='norm_scale'):
        model.extract_feat(dict(gaussians=x))
