"""Backbone layers: set abstraction on hand-made clouds with hand-set weights (answers worked out below),
the builder's level widths, and the Gaussian-Aware Fusion block's invariance to point order."""
import math

import pytest
import torch

from gsclip_mm.models.layers import GaussianAwareFusion, PointSAModule, SharedMLP, build_sa_modules

pytestmark = pytest.mark.numerics  # float comparisons that must hold for any thread count

BN = 1 / math.sqrt(1 + 1e-5)  # an eval-mode BatchNorm at its initial statistics divides by sqrt(1 + eps)

# Four points on the x axis at 0, 1, 3, 4, with one feature 10, 20, 30, 40. FPS picks point 0, then
# point 3 (x = 4). A ball of radius 1.5 (squared distance < 2.25) around x = 0 holds points 0 and 1,
# around x = 4 points 2 and 3; a ball of radius 3.5 (< 12.25) around x = 0 holds points 0, 1, 2 (x = 3)
# and around x = 4 points 1, 2, 3.
XYZ = torch.tensor([[[0., 0., 0.], [1., 0., 0.], [3., 0., 0.], [4., 0., 0.]]])  # [1, 4, 3]
FEATS = torch.tensor([[[10.], [20.], [30.], [40.]]])  # [1, 4, 1]


def _set_linear(mlp: SharedMLP, weight):
    """One-layer SharedMLP with a hand-set weight ``[C_out, C_in]``; eval mode (BatchNorm at its init)."""
    with torch.no_grad():
        mlp.layers[0].weight.copy_(torch.tensor(weight))
    mlp.eval()


def test_sa_module_groups_offsets_then_features_and_max_pools():
    sa = PointSAModule(1, 2, radii=[1.5], num_samples=[4], mlp_channels=[[4]])
    # channels: relu(dx), relu(-dx), relu(dy), relu(feature); input columns are (dx, dy, dz, feature)
    _set_linear(sa.mlps[0], [[1., 0, 0, 0], [-1., 0, 0, 0], [0, 1., 0, 0], [0, 0, 0, 1.]])
    with torch.no_grad():
        center, feats = sa(XYZ, FEATS)
    torch.testing.assert_close(center, torch.tensor([[[0., 0., 0.], [4., 0., 0.]]]))
    # x = 0: offsets 0 and +1, features 10, 20; x = 4: offsets -1 and 0, features 30, 40.
    torch.testing.assert_close(feats, BN * torch.tensor([[[1., 0., 0., 20.], [0., 1., 0., 40.]]]))


def test_sa_module_msg_concatenates_the_scales_in_order():
    sa = PointSAModule(1, 2, radii=[1.5, 3.5], num_samples=[4, 4], mlp_channels=[[1], [2]])
    _set_linear(sa.mlps[0], [[0, 0, 0, 1.]])  # max feature in the small ball
    _set_linear(sa.mlps[1], [[1., 0, 0, 0], [-1., 0, 0, 0]])  # farthest offset each way in the large ball
    assert sa.out_channels == 3
    with torch.no_grad():
        _, feats = sa(XYZ, FEATS)
    # small balls: max features 20 and 40; large balls: x = 0 reaches +3 (never below 0), x = 4 reaches -3.
    torch.testing.assert_close(feats, BN * torch.tensor([[[20., 3., 0.], [40., 0., 3.]]]))


def test_sa_module_group_all_pools_positions_and_features():
    sa = PointSAModule(1, None, radii=[], num_samples=[], mlp_channels=[[2]])
    _set_linear(sa.mlps[0], [[1., 0, 0, 0], [0, 0, 0, -1.]])  # x, and minus the feature (never positive)
    with torch.no_grad():
        center, feats = sa(XYZ, FEATS)
    torch.testing.assert_close(center, torch.zeros(1, 1, 3))
    torch.testing.assert_close(feats, BN * torch.tensor([[[4., 0.]]]))


def test_sa_module_positions_only():
    sa = PointSAModule(0, 2, radii=[1.5], num_samples=[4], mlp_channels=[[2]])
    _set_linear(sa.mlps[0], [[1., 0, 0], [-1., 0, 0]])
    with torch.no_grad():
        _, feats = sa(XYZ, None)
    torch.testing.assert_close(feats, BN * torch.tensor([[[1., 0.], [0., 1.]]]))


def test_build_sa_modules_chains_widths():
    levels = build_sa_modules(11, num_points=(8, 4, None), radii=(0.2, (0.3, 0.5), None),
                              num_samples=(4, (4, 8), None), mlp_channels=((6, 7), ((8, ), (9, 10)), (12, )))
    assert [lvl.out_channels for lvl in levels] == [7, 8 + 10, 12]
    # each level's MLP sees 3 offsets + the previous level's width
    assert [m.layers[0].in_features for lvl in levels for m in lvl.mlps] == [3 + 11, 3 + 7, 3 + 7, 3 + 18]
    with pytest.raises(ValueError, match='one entry per level'):
        build_sa_modules(0, num_points=(8, ), radii=(0.2, 0.4), num_samples=(4, ), mlp_channels=((8, ), ))


def test_gaf_is_invariant_to_point_order_after_point_0():
    """FPS starts at point 0; the groups are sets of nearest neighbours (no ties in random points) pooled
    by max, so shuffling the other points changes nothing beyond float32 round-off (1e-5 allows it)."""
    g = torch.Generator().manual_seed(0)
    xyz, feats = torch.rand(2, 50, 3, generator=g) * 2 - 1, torch.rand(2, 50, 5, generator=g)
    torch.manual_seed(0)
    gaf = GaussianAwareFusion(5, 12, num_groups=8, group_size=6, embed_dims=16, depth=1, num_heads=2).eval()
    perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(49, generator=g)])
    with torch.no_grad():
        a, b = gaf(xyz, feats), gaf(xyz[:, perm], feats[:, perm])
        mismatched = gaf(xyz[:, perm], feats)  # features no longer with their points
    for x, y in zip(a, b):
        assert x.shape == (2, 12)
        torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(mismatched[0], a[0], atol=1e-3)


def test_gaf_caps_groups_at_the_number_of_points():
    torch.manual_seed(0)
    gaf = GaussianAwareFusion(0, 4, num_groups=64, group_size=32, embed_dims=8, depth=1, num_heads=2).eval()
    xyz = torch.rand(3, 10, 3, generator=torch.Generator().manual_seed(1))  # 10 points < 64 groups, < 32 per group
    with torch.no_grad():
        global_feat, shape_feat = gaf(xyz, None)
    assert global_feat.shape == shape_feat.shape == (3, 4)
    assert torch.isfinite(global_feat).all() and torch.isfinite(shape_feat).all()
