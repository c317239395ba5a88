"""PointNet2GAF: output shapes, gradients, the fusion rule (eq. 11) checked with known branch outputs,
invariance to point order, input layouts, the checkpoint layout, and building it through our registry and
from another project's scope."""
import hashlib
import math
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


def _set_gaf_outputs(model, f_g, f_s):
    """Make GAF's global and shape features the constants ``f_g`` and ``f_s`` ``[C_last]`` (zero weights, bias)."""
    with torch.no_grad():
        for proj, value in ((model.gaf.conv_proj, f_g), (model.gaf.shape_proj, f_s)):
            proj.weight.zero_()
            proj.bias.copy_(value)


def test_fusion_is_the_residual_sum_of_eq_11():
    """embedding = MLP(f_p + f_g + f_s): with the head replaced by the identity and GAF's two features set
    to known constants, the embedding is PointNet++'s global feature plus the two constants."""
    model = _build().eval()
    model.head = torch.nn.Identity()
    f_g, f_s = torch.linspace(-2, 2, 40), torch.arange(40.) / 8
    _set_gaf_outputs(model, f_g, f_s)
    with torch.no_grad():
        out = model(_gaussians())
    assert out['global_feat'].abs().sum() > 0  # f_p is not zero: the check sees it too
    torch.testing.assert_close(out['embedding'], out['global_feat'] + f_g + f_s)


def test_fusion_happens_before_the_head():
    """With the real head: GAF features that cancel (f_g = -f_s) leave the embedding of f_g = f_s = 0, which
    a head applied per branch would not; a non-zero f_g changes it; f_g and f_s enter symmetrically."""
    model = _build().eval()
    x = _gaussians()
    c = torch.linspace(-1, 3, 40)

    def embed(f_g, f_s):
        _set_gaf_outputs(model, f_g, f_s)
        with torch.no_grad():
            return model(x)['embedding']

    zero = embed(torch.zeros(40), torch.zeros(40))
    torch.testing.assert_close(embed(c, -c), zero)
    assert not torch.allclose(embed(c, torch.zeros(40)), zero, atol=1e-3)
    torch.testing.assert_close(embed(c, torch.zeros(40)), embed(torch.zeros(40), c))


def test_embedding_is_invariant_to_point_order():
    """Every ball holds all its points (num_samples >= N) and no distances tie, so any order of the points
    that keeps point 0 first (FPS starts there) must give the same embedding, up to float32 round-off of
    rows summed in other positions (a few ulp, far below the 1e-5 allowed)."""
    sa_cfg = dict(num_points=(16, 4, None), radii=(0.6, 1.2, None), num_samples=(N, 16, None),
                  mlp_channels=((8, 16), (16, 32), (32, 40)))
    model = _build(sa_cfg=sa_cfg).eval()
    x = _gaussians()
    shuffled = 1 + torch.randperm(N - 1, generator=torch.Generator().manual_seed(3))
    perm = torch.cat([torch.zeros(1, dtype=torch.long), shuffled])  # point 0 stays first
    with torch.no_grad():
        a, b = model(x), model(x[:, perm])
    torch.testing.assert_close(b['embedding'], a['embedding'], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b['sa_xyz'][0], a['sa_xyz'][0])  # the same centres, in the same order
    # Moving point 0 moves FPS's start, so the order matters there (mmcv's convention).
    with torch.no_grad():
        c = model(x.flip(1))
    assert not torch.allclose(c['sa_xyz'][0], a['sa_xyz'][0])


# Sorted state_dict keys and shapes of a small PointNet2GAF with every kind of submodule (an MSG level, a
# group-all level, GAF, the size embedding, the head), recorded before the set-abstraction and GAF modules
# moved to gsclip_mm/models/layers/: checkpoints saved before the move must keep loading.
SMALL_STATE_CFG = dict(
    type='PointNet2GAF', embed_dims=24, with_size=True,
    sa_cfg=dict(num_points=(16, None), radii=((0.3, 0.6), None), num_samples=((4, 8), None),
                mlp_channels=(((8, ), (12, )), (40, ))),
    gaf_cfg=dict(num_groups=8, group_size=8, embed_dims=16, depth=1, num_heads=2))
SMALL_STATE_KEYS = """
    gaf.conv_branch.layers.0.weight [16, 16]
    gaf.conv_branch.layers.1.bias [16]
    gaf.conv_branch.layers.1.num_batches_tracked []
    gaf.conv_branch.layers.1.running_mean [16]
    gaf.conv_branch.layers.1.running_var [16]
    gaf.conv_branch.layers.1.weight [16]
    gaf.conv_branch.layers.3.weight [32, 16]
    gaf.conv_branch.layers.4.bias [32]
    gaf.conv_branch.layers.4.num_batches_tracked []
    gaf.conv_branch.layers.4.running_mean [32]
    gaf.conv_branch.layers.4.running_var [32]
    gaf.conv_branch.layers.4.weight [32]
    gaf.conv_proj.bias [40]
    gaf.conv_proj.weight [40, 32]
    gaf.group_encoder.layers.0.weight [8, 14]
    gaf.group_encoder.layers.1.bias [8]
    gaf.group_encoder.layers.1.num_batches_tracked []
    gaf.group_encoder.layers.1.running_mean [8]
    gaf.group_encoder.layers.1.running_var [8]
    gaf.group_encoder.layers.1.weight [8]
    gaf.group_encoder.layers.3.weight [16, 8]
    gaf.group_encoder.layers.4.bias [16]
    gaf.group_encoder.layers.4.num_batches_tracked []
    gaf.group_encoder.layers.4.running_mean [16]
    gaf.group_encoder.layers.4.running_var [16]
    gaf.group_encoder.layers.4.weight [16]
    gaf.pos_embed.0.bias [16]
    gaf.pos_embed.0.weight [16, 3]
    gaf.pos_embed.2.bias [16]
    gaf.pos_embed.2.weight [16, 16]
    gaf.shape_proj.bias [40]
    gaf.shape_proj.weight [40, 16]
    gaf.transformer.layers.0.linear1.bias [32]
    gaf.transformer.layers.0.linear1.weight [32, 16]
    gaf.transformer.layers.0.linear2.bias [16]
    gaf.transformer.layers.0.linear2.weight [16, 32]
    gaf.transformer.layers.0.norm1.bias [16]
    gaf.transformer.layers.0.norm1.weight [16]
    gaf.transformer.layers.0.norm2.bias [16]
    gaf.transformer.layers.0.norm2.weight [16]
    gaf.transformer.layers.0.self_attn.in_proj_bias [48]
    gaf.transformer.layers.0.self_attn.in_proj_weight [48, 16]
    gaf.transformer.layers.0.self_attn.out_proj.bias [16]
    gaf.transformer.layers.0.self_attn.out_proj.weight [16, 16]
    gaf.transformer.norm.bias [16]
    gaf.transformer.norm.weight [16]
    head.0.bias [40]
    head.0.weight [40, 40]
    head.1.bias [40]
    head.1.weight [40]
    head.4.bias [24]
    head.4.weight [24, 40]
    sa_modules.0.mlps.0.layers.0.weight [8, 14]
    sa_modules.0.mlps.0.layers.1.bias [8]
    sa_modules.0.mlps.0.layers.1.num_batches_tracked []
    sa_modules.0.mlps.0.layers.1.running_mean [8]
    sa_modules.0.mlps.0.layers.1.running_var [8]
    sa_modules.0.mlps.0.layers.1.weight [8]
    sa_modules.0.mlps.1.layers.0.weight [12, 14]
    sa_modules.0.mlps.1.layers.1.bias [12]
    sa_modules.0.mlps.1.layers.1.num_batches_tracked []
    sa_modules.0.mlps.1.layers.1.running_mean [12]
    sa_modules.0.mlps.1.layers.1.running_var [12]
    sa_modules.0.mlps.1.layers.1.weight [12]
    sa_modules.1.mlps.0.layers.0.weight [40, 23]
    sa_modules.1.mlps.0.layers.1.bias [40]
    sa_modules.1.mlps.0.layers.1.num_batches_tracked []
    sa_modules.1.mlps.0.layers.1.running_mean [40]
    sa_modules.1.mlps.0.layers.1.running_var [40]
    sa_modules.1.mlps.0.layers.1.weight [40]
    size_embed.0.bias [10]
    size_embed.0.weight [10, 1]
    size_embed.2.bias [40]
    size_embed.2.weight [40, 10]
"""
# The same listing for the default backbone and the synthetic demo's (
# configs/gsclip/gsclip_pointnet2-tiny-gaf_1xb32-cosine-20e_synthetic.py): (number of keys, SHA-256 of the listing).
STATE_DIGESTS = [
    (dict(type='PointNet2GAF'), 118, '590acb87a217bc874c90602c6b3777ba6e85df9e29f217f8cf3b9904e1205d84'),
    (dict(type='PointNet2GAF', embed_dims=128, with_size=True), 122,
     'afcdf0bc14fb3c2bb350dda665e41665b249386354b90c9859176f0bcdf75f11'),
]


def _state_listing(model):
    return '\n'.join(f'{k} {list(v.shape)}' for k, v in sorted(model.state_dict().items()))


@pytest.mark.parametrize('backbone', ['PointNet2GAF', 'PointNet2GAFCls', 'PointNet2GAFDet3D'])
def test_state_dict_layout_is_unchanged(backbone):
    """The core and its mmpretrain and mmdetection3d adapters (without FP levels) alike."""
    assert _state_listing(MODELS.build(dict(SMALL_STATE_CFG, type=backbone))) == \
        textwrap.dedent(SMALL_STATE_KEYS).strip()
    for cfg, count, digest in STATE_DIGESTS:
        listing = _state_listing(MODELS.build(dict(cfg, type=backbone)))
        assert (listing.count('\n') + 1, hashlib.sha256(listing.encode()).hexdigest()) == (count, digest), cfg


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
    emb_small.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.size_embed.parameters())
    with pytest.raises(ValueError, match='norm_scale'):
        model(x)


def test_size_enters_as_an_embedding_of_log_radius_added_before_the_head():
    """With GAF's features zero, the head the identity and the size embedding a Linear(1, C) of ones, the
    embedding is f_p + log(norm_scale) in every channel; radii below 1 mm count as 1 mm."""
    model = _build(with_size=True).eval()
    model.head = torch.nn.Identity()
    _set_gaf_outputs(model, torch.zeros(40), torch.zeros(40))
    model.size_embed = torch.nn.Linear(1, 40)
    with torch.no_grad():
        model.size_embed.weight.fill_(1.)
        model.size_embed.bias.zero_()
        out = model(_gaussians(), norm_scale=torch.tensor([[2.0], [1e-5]]))
    expected = torch.tensor([[math.log(2.0)], [math.log(1e-3)]])  # [B, 1], broadcast over the channels
    torch.testing.assert_close(out['embedding'], out['global_feat'] + expected)


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
