"""PointNet2GAF's output conventions: the core's dict, and its registered adapters, PointNet2GAFCls
(mmpretrain's tuple of stages) and PointNet2GAFDet3D (mmdetection3d's ``PointNet2SASSG`` dict with feature
propagation, ``PointFPModule``), checked against the core's outputs for the same weights and against what those
consumers read; the adapters keep the core's state_dict keys; the deprecated ``out_type`` builds them; the
feature-propagation interpolation against a hand-worked answer and a slow reference."""
import textwrap

import pytest
import torch

from gsclip_mm.models.backbones import PointNet2GAF, PointNet2GAFCls, PointNet2GAFDet3D
from gsclip_mm.models.layers.pointnet_modules import PointFPModule, build_fp_modules, three_interpolate_nearest
from gsclip_mm.models.layers.pointnet_modules.point_fp_module import _three_interpolate_reference
from gsclip_mm.registry import MODELS
from gsclip_mm.structures import GS_DIM

B, N = 2, 64
# Three radius levels, no group-all: the shape of mmdetection3d's PointNet2SASSG (4 levels there).
SASSG = dict(num_points=(32, 16, 8), radii=(0.4, 0.6, 0.8), num_samples=(8, 8, 8),
             mlp_channels=((8, 16), (16, 24), (24, 32)))
# Ours: two radius levels, then a group-all level (PointNet++ for classification).
WITH_GROUP_ALL = dict(num_points=(32, 8, None), radii=(0.4, 0.8, None), num_samples=(8, 8, None),
                      mlp_channels=((8, 16), (16, 32), (32, 40)))
GAF = dict(num_groups=8, group_size=8, embed_dims=16, depth=1, num_heads=2)
FP = ((24, 24), (20, ))
# The fp_modules entries of the state_dict with sa_cfg=SASSG and fp_channels=FP, in order, recorded from
# PointNet2GAF(out_type='mmdet3d') before the output conventions became adapter classes.
FP_STATE_KEYS = """
    fp_modules.0.mlp.layers.0.weight [24, 56]
    fp_modules.0.mlp.layers.1.weight [24]
    fp_modules.0.mlp.layers.1.bias [24]
    fp_modules.0.mlp.layers.1.running_mean [24]
    fp_modules.0.mlp.layers.1.running_var [24]
    fp_modules.0.mlp.layers.1.num_batches_tracked []
    fp_modules.0.mlp.layers.3.weight [24, 24]
    fp_modules.0.mlp.layers.4.weight [24]
    fp_modules.0.mlp.layers.4.bias [24]
    fp_modules.0.mlp.layers.4.running_mean [24]
    fp_modules.0.mlp.layers.4.running_var [24]
    fp_modules.0.mlp.layers.4.num_batches_tracked []
    fp_modules.1.mlp.layers.0.weight [20, 40]
    fp_modules.1.mlp.layers.1.weight [20]
    fp_modules.1.mlp.layers.1.bias [20]
    fp_modules.1.mlp.layers.1.running_mean [20]
    fp_modules.1.mlp.layers.1.running_var [20]
    fp_modules.1.mlp.layers.1.num_batches_tracked []
"""


def _build(type='PointNet2GAF', **kwargs):
    torch.manual_seed(0)
    return MODELS.build(dict(dict(type=type, sa_cfg=WITH_GROUP_ALL, gaf_cfg=GAF, embed_dims=24), **kwargs)).eval()


def _points(channels=GS_DIM, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, N, channels, generator=g)  # [B, N, C]
    x[..., :3] = x[..., :3] * 2 - 1
    return x


def _same_weights(model, type, **kwargs):
    """A ``type`` backbone with ``kwargs`` changed and ``model``'s weights (strict: the same state_dict keys)."""
    other = _build(type, **kwargs)
    other.load_state_dict(model.state_dict())
    return other


def _listing(model):
    return [f'{k} {list(v.shape)}' for k, v in model.state_dict().items()]


# ----------------------------------------------------------------------------------------------- ours
def test_core_output_is_one_dict():
    model = _build()
    assert type(model) is PointNet2GAF and not hasattr(model, 'fp_modules')
    with torch.no_grad():
        out = model(_points())
    assert sorted(out) == ['embedding', 'global_feat', 'sa_features', 'sa_xyz']
    assert len(out['sa_xyz']) == len(out['sa_features']) == 3  # the levels only, no input entry
    assert [tuple(t.shape) for t in out['sa_features']] == [(B, 16, 32), (B, 32, 8), (B, 40, 1)]


# ------------------------------------------------------------------------------------ adapters: the state_dict
@pytest.mark.parametrize('sa_cfg', [WITH_GROUP_ALL, SASSG])
@pytest.mark.parametrize('type,kwargs', [
    ('PointNet2GAFCls', {}), ('PointNet2GAFCls', dict(out_indices=(0, 1, 2, 3))),
    ('PointNet2GAFCls', dict(out_indices=(1, ))), ('PointNet2GAFDet3D', {})])
def test_adapters_have_the_core_state_dict_keys(sa_cfg, type, kwargs):
    """The same keys and shapes, in the same order: a checkpoint of one loads strictly into the others."""
    assert _listing(_build(type, sa_cfg=sa_cfg, **kwargs)) == _listing(_build(sa_cfg=sa_cfg))


@pytest.mark.parametrize('in_channels', [None, 3])
def test_det3d_adds_only_the_feature_propagation_keys_of_before(in_channels):
    det = _build('PointNet2GAFDet3D', sa_cfg=SASSG, fp_channels=FP, in_channels=in_channels)
    core = _build(sa_cfg=SASSG, in_channels=in_channels)
    # Two FP levels stop at SA level 0, so their widths do not depend on the input features.
    fp_keys = textwrap.dedent(FP_STATE_KEYS).strip().split('\n')
    assert len(fp_keys) == 18 and _listing(det) == _listing(core) + fp_keys


@pytest.mark.parametrize('out_type,cls,kwargs', [
    ('gsclip', PointNet2GAF, {}), ('mmpretrain', PointNet2GAFCls, dict(out_indices=(-1, 0))),
    ('mmpretrain', PointNet2GAFCls, dict(out_indices=None)), ('mmdet3d', PointNet2GAFDet3D, dict(fp_channels=FP))])
def test_deprecated_out_type_builds_the_adapter(out_type, cls, kwargs):
    """The config names users were given keep working: ``type='PointNet2GAF', out_type=...`` builds the adapter
    (with a FutureWarning, which users see by default), with the same state_dict and outputs as naming it."""
    with pytest.deprecated_call(match=f"use type='{cls.__name__}'"):
        old = _build(sa_cfg=SASSG, out_type=out_type, **kwargs)
    assert type(old) is cls
    new = _same_weights(old, cls.__name__, sa_cfg=SASSG, **kwargs)
    assert _listing(new) == _listing(old)
    x = _points()
    with torch.no_grad():
        a, b = old(x), new(x)
    if isinstance(a, dict):
        assert list(a) == list(b)
        a, b = [a[k] for k in a], [b[k] for k in b]
    torch.testing.assert_close(a, b)


def test_deprecated_out_type_is_checked():
    with pytest.raises(ValueError, match='out_type must be one of'):
        _build(out_type='mmdet')
    with pytest.raises(ValueError, match='builds PointNet2GAFDet3D, not a PointNet2GAFCls'):
        _build('PointNet2GAFCls', out_type='mmdet3d')
    with pytest.deprecated_call():  # the adapter's own convention: accepted, and redundant
        assert type(_build('PointNet2GAFCls', out_type='mmpretrain')) is PointNet2GAFCls


# --------------------------------------------------------------------------------------------- mmpretrain
def test_mmpretrain_default_is_the_embedding_as_a_one_tuple():
    model = _build()
    pre = _same_weights(model, 'PointNet2GAFCls')
    x = _points()
    with torch.no_grad():
        ours, stages = model(x), pre(x)
    assert isinstance(stages, tuple) and len(stages) == 1 and pre.out_indices == (3, )
    torch.testing.assert_close(stages[-1], ours['embedding'])  # what LinearClsHead.pre_logits takes


@pytest.mark.parametrize('out_indices,normalised', [((-1, 0, 2), (0, 2, 3)), ((0, 1, 2, 3), (0, 1, 2, 3)),
                                                    ((-2, ), (2, ))])
def test_mmpretrain_out_indices_pick_the_core_outputs_in_stage_order(out_indices, normalised):
    model = _build()
    pre = _same_weights(model, 'PointNet2GAFCls', out_indices=out_indices)
    x = _points()
    with torch.no_grad():
        ours, stages = model(x), pre(x)
    assert pre.out_indices == normalised and isinstance(stages, tuple) and len(stages) == len(normalised)
    core_stages = [*ours['sa_features'], ours['embedding']]
    assert [tuple(s.shape) for s in core_stages] == [(B, 16, 32), (B, 32, 8), (B, 40, 1), (B, 24)]
    for stage, i in zip(stages, normalised):
        torch.testing.assert_close(stage, core_stages[i])
    if 2 in normalised:
        torch.testing.assert_close(stages[normalised.index(2)][..., 0], ours['global_feat'])  # group-all, pooled


def test_mmpretrain_without_the_embedding_stage_does_not_run_gaf_or_the_head():
    pre = _build('PointNet2GAFCls', out_indices=(1, ))
    calls = []
    pre.gaf.register_forward_hook(lambda *a: calls.append('gaf'))
    pre.head.register_forward_hook(lambda *a: calls.append('head'))
    with torch.no_grad():
        (feat, ) = pre(_points())
    assert feat.shape == (B, 32, 8) and calls == []


def test_mmpretrain_size_input_reaches_the_embedding():
    model = _build(with_size=True)
    pre = _same_weights(model, 'PointNet2GAFCls', with_size=True)
    x, scale = _points(), torch.tensor([[0.4], [1.6]])
    with torch.no_grad():
        torch.testing.assert_close(pre(x, scale)[0], model(x, scale)['embedding'])
    with pytest.raises(ValueError, match='norm_scale'):
        pre(x)


def test_output_arguments_are_checked():
    with pytest.raises(ValueError, match='among the 4'):
        _build('PointNet2GAFCls', out_indices=(4, ))
    with pytest.raises(ValueError, match='among the 4'):
        _build('PointNet2GAFCls', out_indices=())
    with pytest.raises(ValueError, match='twice'):
        _build('PointNet2GAFCls', out_indices=(3, -1))
    with pytest.raises(ValueError, match='more than the 3'):
        _build('PointNet2GAFDet3D', fp_channels=((8, ), (8, ), (8, ), (8, )))
    with pytest.raises(TypeError, match='out_indices'):  # the core has one output: no stages to pick
        _build(out_indices=(0, ))
    with pytest.raises(TypeError, match='fp_channels'):
        _build('PointNet2GAFCls', fp_channels=((8, ), ))


# ----------------------------------------------------------------------------------------------- mmdet3d
# PointNet2SASSG.forward (mmdetection3d 1.x, mmdet3d/models/backbones/pointnet2_sa_ssg.py) returns
#   sa_xyz / sa_features / sa_indices: num_sa + 1 entries, entry 0 the input points ([B, N, 3], [B, C', N] or
#     None, arange(N)), entry i + 1 SA level i ([B, M_i, 3], [B, C_i, M_i], indices of the centres into the
#     input points);
#   fp_xyz / fp_features / fp_indices: num_fp + 1 entries, entry 0 the last SA level's, entry j + 1 the output
#     of FP level j on SA entry num_sa - j - 1's points ([B, M, 3], [B, fp_channels[j][-1], M], [B, M]).
SASSG_KEYS = ['fp_features', 'fp_indices', 'fp_xyz', 'sa_features', 'sa_indices', 'sa_xyz']


@pytest.mark.parametrize('in_channels', [3, 6])
def test_mmdet3d_dict_has_pointnet2_sassg_keys_shapes_and_meaning(in_channels):
    model = _build('PointNet2GAFDet3D', sa_cfg=SASSG, in_channels=in_channels, fp_channels=FP)
    x = _points(in_channels)
    with torch.no_grad():
        out = model(x)
    assert sorted(set(out) - {'global_feat', 'embedding'}) == SASSG_KEYS
    widths, centres = (None if in_channels == 3 else in_channels - 3, 16, 24, 32), (N, 32, 16, 8)
    assert [tuple(t.shape) for t in out['sa_xyz']] == [(B, m, 3) for m in centres]
    assert [None if t is None else tuple(t.shape) for t in out['sa_features']] == \
        [None if c is None else (B, c, m) for c, m in zip(widths, centres)]
    assert [tuple(t.shape) for t in out['sa_indices']] == [(B, m) for m in centres]
    assert out['sa_indices'][0].tolist() == [list(range(N))] * B
    if in_channels == 6:
        torch.testing.assert_close(out['sa_features'][0], x[..., 3:].transpose(1, 2))
    for xyz, idx in zip(out['sa_xyz'], out['sa_indices']):  # every level's centres are the input points named
        assert idx.dtype == torch.long
        torch.testing.assert_close(xyz, torch.stack([x[b, idx[b], :3] for b in range(B)]), rtol=0, atol=0)
    # FP level j propagates onto SA entry 3 - j - 1: 16 then 32 points.
    assert [tuple(t.shape) for t in out['fp_features']] == [(B, 32, 8), (B, 24, 16), (B, 20, 32)]
    for j in range(3):
        assert out['fp_xyz'][j] is out['sa_xyz'][3 - j] and out['fp_indices'][j] is out['sa_indices'][3 - j]
    assert out['fp_features'][0] is out['sa_features'][3]


@pytest.mark.parametrize('sa_cfg', [WITH_GROUP_ALL, SASSG])
def test_mmdet3d_levels_and_embedding_are_the_core_outputs(sa_cfg):
    """With a GS-CLIP backbone's weights (FP layers are the only parameters it lacks): SA entries 1.. are the
    core's levels, and global_feat and embedding the core's."""
    model = _build(sa_cfg=sa_cfg)
    det = _build('PointNet2GAFDet3D', sa_cfg=sa_cfg, fp_channels=FP)
    missing, unexpected = det.load_state_dict(model.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith('fp_modules.') for k in missing)
    x = _points()
    with torch.no_grad():
        ours, out = model(x), det(x)
    torch.testing.assert_close(out['sa_xyz'][1:], ours['sa_xyz'])
    torch.testing.assert_close(out['sa_features'][1:], ours['sa_features'])
    torch.testing.assert_close(out['global_feat'], ours['global_feat'])
    torch.testing.assert_close(out['embedding'], ours['embedding'])


def test_mmdet3d_seeds_as_votehead_reads_them():
    """mmdetection3d's VoteHead takes its seeds from the last FP entry: positions, features and indices into the
    input points must agree with each other."""
    model = _build('PointNet2GAFDet3D', sa_cfg=SASSG, fp_channels=FP)
    x = _points()
    with torch.no_grad():
        out = model(x)
    seed_points, seed_features, seed_indices = out['fp_xyz'][-1], out['fp_features'][-1], out['fp_indices'][-1]
    assert seed_features.shape == (B, 20, seed_points.shape[1]) and seed_indices.shape == seed_points.shape[:2]
    torch.testing.assert_close(seed_points, torch.gather(x[..., :3], 1, seed_indices[..., None].expand(-1, -1, 3)))


def test_mmdet3d_fp_level_is_interpolation_then_skip_concat_then_mlp():
    """FP level 0 computed by hand from the SA outputs: interpolate the last level onto the one before,
    concatenate its skip features after, apply the level's shared MLP."""
    model = _build('PointNet2GAFDet3D', sa_cfg=SASSG, fp_channels=FP)
    with torch.no_grad():
        out = model(_points())
        interp = three_interpolate_nearest(out['sa_xyz'][2], out['sa_xyz'][3], out['sa_features'][3])  # [B, 32, 16]
        feats = torch.cat([interp, out['sa_features'][2]], dim=1)  # [B, 32 + 24, 16]
        expected = model.fp_modules[0].mlp(feats.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(out['fp_features'][1], expected)


def test_mmdet3d_group_all_level_and_propagation_to_the_input_points():
    """Our group-all level: centre the origin, index -1; FP from it gives its one feature to every point
    (mmdetection3d's source=None case); propagation through every level reaches the N input points."""
    model = _build('PointNet2GAFDet3D', fp_channels=((24, ), (20, ), (12, )))
    with torch.no_grad():
        out = model(_points())
    assert out['sa_indices'][-1].tolist() == [[-1]] * B and out['sa_xyz'][-1].abs().sum() == 0
    assert [tuple(t.shape) for t in out['fp_features']] == [(B, 40, 1), (B, 24, 8), (B, 20, 32), (B, 12, N)]
    assert out['fp_indices'][-1].tolist() == [list(range(N))] * B
    with torch.no_grad():  # FP level 0's input: the global feature on each of the 8 centres, then their own
        skip = out['sa_features'][2]  # [B, 32, 8]
        feats = torch.cat([out['sa_features'][3].expand(-1, -1, 8), skip], dim=1)
        expected = model.fp_modules[0].mlp(feats.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(out['fp_features'][1], expected)


def test_mmdet3d_gradients_reach_every_parameter():
    model = _build('PointNet2GAFDet3D', sa_cfg=SASSG, fp_channels=FP).train()
    out = model(_points())
    (out['fp_features'][-1].square().sum() + out['embedding'].square().sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


# ------------------------------------------------------------------------------------ feature propagation
@pytest.mark.numerics
def test_three_nn_interpolation_by_hand():
    """Sources on the x axis at 0, 1, 3, 7 with features 10, 20, 30, 40. Target x = 1.5: nearest 1 (d 0.5),
    3 (1.5), 0 (1.5; the tie with 3 is the same weight either way); weights 1/0.5 : 1/1.5 : 1/1.5 = 3 : 1 : 1.
    Target x = 3: on a source point, whose weight 1e8 takes all."""
    source = torch.tensor([[[0., 0, 0], [1., 0, 0], [3., 0, 0], [7., 0, 0]]])  # [1, 4, 3]
    feats = torch.tensor([[[10., 20., 30., 40.]]])  # [1, 1, 4]
    target = torch.tensor([[[1.5, 0, 0], [3., 0, 0]]])  # [1, 2, 3]
    out = three_interpolate_nearest(target, source, feats)
    torch.testing.assert_close(out, torch.tensor([[[(3 * 20. + 30. + 10.) / 5, 30.]]]))


@pytest.mark.numerics
@pytest.mark.parametrize('n,m', [(16, 5), (7, 3), (9, 2), (4, 1)])
def test_three_nn_interpolation_matches_reference_forward_and_backward(n, m):
    g = torch.Generator().manual_seed(n * 10 + m)
    target, source = torch.rand(2, n, 3, generator=g), torch.rand(2, m, 3, generator=g)
    feats = torch.rand(2, 6, m, generator=g, dtype=torch.float64).requires_grad_(True)
    out = three_interpolate_nearest(target.double(), source.double(), feats)
    ref = _three_interpolate_reference(target.double(), source.double(), feats)
    torch.testing.assert_close(out, ref)
    cot = torch.rand(out.shape, generator=g, dtype=torch.float64)
    (grad, ) = torch.autograd.grad(out, feats, cot)
    (grad_ref, ) = torch.autograd.grad(ref, feats, cot)
    torch.testing.assert_close(grad, grad_ref)


def test_fp_module_source_none_broadcasts_and_widths_are_checked():
    fp = PointFPModule([5, 4]).eval()
    target, glob, skip = torch.rand(2, 6, 3), torch.rand(2, 3, 1), torch.rand(2, 2, 6)
    torch.testing.assert_close(fp(target, None, skip, glob), fp(target, torch.zeros(2, 1, 3), skip, glob))
    assert fp(target, None, skip, glob).shape == (2, 4, 6)
    with pytest.raises(ValueError, match='expects 5 input channels'):
        fp(target, None, None, glob)


def test_build_fp_modules_chains_widths_as_pointnet2_sassg():
    """PointNet2SASSG's defaults: SA widths 128, 256, 256, 256 on 1 input feature; FP (256, 256) x 2 take
    256 + 256 and then 256 + 256 (its target is SA level 1's)."""
    levels = build_fp_modules(1, [128, 256, 256, 256], ((256, 256), (256, 256)))
    assert [(fp.in_channels, fp.out_channels) for fp in levels] == [(512, 256), (512, 256)]
    levels = build_fp_modules(0, [16, 24], ((8, ), (4, )))
    assert [(fp.in_channels, fp.out_channels) for fp in levels] == [(24 + 16, 8), (8 + 0, 4)]


@pytest.mark.parametrize('cls', [PointNet2GAF, PointNet2GAFCls, PointNet2GAFDet3D])
def test_backbones_are_registered(cls):
    assert MODELS.get(cls.__name__) is cls and issubclass(cls, PointNet2GAF)
