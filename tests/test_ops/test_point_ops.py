"""Point ops: hand-made cases with known answers, and the batched PyTorch ops
against their slow references over several batch shapes."""
import pytest
import torch

from gsclip_mm.ops import ball_query
from gsclip_mm.ops import distance as distance_module
from gsclip_mm.ops import (furthest_point_sample, gather_points, group_points, grouping_operation, knn,
                           mmcv_ops_available, square_distance)
from gsclip_mm.ops._mmcv import use_mmcv
from gsclip_mm.ops.ball_query import _ball_query_reference
from gsclip_mm.ops.furthest_point_sample import _furthest_point_sample_reference
from gsclip_mm.ops.group_points import _grouping_operation_reference
from gsclip_mm.ops.knn import _knn_reference

SHAPES = [(1, 17), (3, 64), (2, 150)]  # (B, N)

# Five points whose FPS order is worked out by hand (squared distances from
# point 0: 1, 4, 9, 0.02 -> point 3; then min(1, 10), min(4, 13), 0.02 ->
# point 2; then min(1, 5) -> point 1; last point 4).
FIVE = torch.tensor([[0., 0., 0.], [1., 0., 0.], [0., 2., 0.], [0., 0., 3.], [0.1, 0.1, 0.]])


def _cloud(B, N, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, N, 3, generator=g) * 2 - 1  # [B, N, 3]


def test_fps_five_points_known_answer():
    # Second cloud: the same points reversed; worked by hand as above from
    # (0.1, 0.1, 0): squared distances 0.82, 3.62, 9.02, 0.02 -> index 1, ...
    xyz = torch.stack([FIVE, FIVE.flip(0)])  # [2, 5, 3]
    idx = furthest_point_sample(xyz, 5)
    assert idx.dtype == torch.long
    assert idx.tolist() == [[0, 3, 2, 1, 4], [0, 1, 2, 3, 4]]
    assert furthest_point_sample(xyz, 3).tolist() == [[0, 3, 2], [0, 1, 2]]
    assert _furthest_point_sample_reference(xyz, 5).tolist() == [[0, 3, 2, 1, 4], [0, 1, 2, 3, 4]]


def test_fps_translation_invariant_and_ties_lowest_index():
    assert furthest_point_sample((FIVE + 5.).unsqueeze(0), 5).tolist() == [[0, 3, 2, 1, 4]]
    # Points 1 and 2 are both at distance 1 from point 0: the lower index wins.
    tie = torch.tensor([[[0., 0., 0.], [1., 0., 0.], [0., 1., 0.]]])
    assert furthest_point_sample(tie, 2).tolist() == [[0, 1]]


def test_fps_measures_in_the_input_dtype():
    """Point 2 is farther from point 0 than point 1 by 4.8e-8 in float64 (0.6f^2 + 0.8f^2); float32 rounds
    that to a tie, which the lower index wins. SampleGaussians relies on float64 separating them."""
    xyz = torch.tensor([[[0., 0., 0.], [1., 0., 0.], [0.6, 0.8, 0.]]])
    assert furthest_point_sample(xyz, 2).tolist() == [[0, 1]]
    assert furthest_point_sample(xyz.double(), 2).tolist() == [[0, 2]]
    assert _furthest_point_sample_reference(xyz.double(), 2).tolist() == [[0, 2]]


def test_fps_after_all_distinct_positions_repeats_point_0():
    """Duplicates leave every point at distance 0 once each position is picked: a tie point 0 wins."""
    xyz = torch.tensor([[[0., 0., 0.], [1., 0., 0.], [1., 0., 0.], [0., 0., 0.]]])
    assert furthest_point_sample(xyz, 4).tolist() == [[0, 1, 0, 0]]
    assert _furthest_point_sample_reference(xyz, 4).tolist() == [[0, 1, 0, 0]]


@pytest.mark.parametrize('B,N', SHAPES)
def test_fps_matches_reference(B, N):
    xyz = _cloud(B, N)
    for m in (1, N // 3, N):
        torch.testing.assert_close(furthest_point_sample(xyz, m), _furthest_point_sample_reference(xyz, m))


def test_fps_rejects_bad_arguments():
    with pytest.raises(ValueError, match='num_points'):
        furthest_point_sample(_cloud(1, 4), 5)
    with pytest.raises(AssertionError, match=r'\[B, N, 3\]'):
        furthest_point_sample(torch.zeros(4, 3), 2)


def test_square_distance_matches_expansion():
    a, b = _cloud(2, 7, seed=1), _cloud(2, 9, seed=2)
    expected = (a[:, :, None] - b[:, None]).pow(2).sum(-1)  # [2, 7, 9]
    torch.testing.assert_close(square_distance(a, b), expected)


def test_ball_query_hand_made():
    # Points on the x axis at 0, 1, 2, 3; squared distances from centre 0 are 0, 1, 4, 9.
    xyz = torch.tensor([[[float(i), 0., 0.] for i in range(4)]])  # [1, 4, 3]
    centres = torch.tensor([[[0., 0., 0.], [10., 0., 0.]]])  # [1, 2, 3]
    idx = ball_query(0., 1.5, 4, xyz, centres)
    # Ball 0 holds points 0, 1 (padded with the first); ball 1 is empty (all 0).
    assert idx.tolist() == [[[0, 1, 0, 0], [0, 0, 0, 0]]]
    assert ball_query(0., 2.5, 2, xyz, centres)[0, 0].tolist() == [0, 1]  # first K in index order
    # A shell 1.5 <= d < 3.5 keeps points 2, 3 and the centre itself (d2 == 0), as mmcv does.
    assert ball_query(1.5, 3.5, 4, xyz, centres)[0, 0].tolist() == [0, 2, 3, 0]
    # The radius is exclusive: a point at exactly 1.0 is outside a ball of radius 1.
    assert ball_query(0., 1.0, 2, xyz, centres)[0, 0].tolist() == [0, 0]


@pytest.mark.parametrize('B,N', SHAPES)
@pytest.mark.parametrize('min_radius,max_radius,K', [(0., 0.3, 5), (0., 0.8, 16), (0.2, 0.6, 4)])
def test_ball_query_matches_reference(B, N, min_radius, max_radius, K):
    xyz = _cloud(B, N)
    centres = torch.cat([xyz[:, :5], _cloud(B, 3, seed=3), xyz[:, :1] + 10], dim=1)  # [B, 9, 3]; last: empty
    out = ball_query(min_radius, max_radius, K, xyz, centres)
    assert out.shape == (B, 9, K) and out.dtype == torch.long
    torch.testing.assert_close(out, _ball_query_reference(min_radius, max_radius, K, xyz, centres))


def test_ball_query_and_knn_in_centre_blocks(monkeypatch):
    """Many blocks of centres give the same answer as one block."""
    xyz = _cloud(2, 40)
    centres = _cloud(2, 11, seed=5)
    whole_bq, whole_knn = ball_query(0., 0.7, 6, xyz, centres), knn(6, xyz, centres)
    monkeypatch.setattr(distance_module, 'BLOCK_ELEMENTS', 2 * 40 * 3)  # 3 centres per block
    assert len(list(distance_module.centre_blocks(2, 11, 40))) == 4
    torch.testing.assert_close(ball_query(0., 0.7, 6, xyz, centres), whole_bq)
    torch.testing.assert_close(knn(6, xyz, centres), whole_knn)
    torch.testing.assert_close(whole_bq, _ball_query_reference(0., 0.7, 6, xyz, centres))


def test_ball_query_more_samples_than_points():
    xyz = _cloud(1, 3)
    out = ball_query(0., 5., 5, xyz, xyz[:, :1])  # all 3 inside, K = 5 > N
    assert out.tolist() == [[[0, 1, 2, 0, 0]]]
    torch.testing.assert_close(out, _ball_query_reference(0., 5., 5, xyz, xyz[:, :1]))


def test_knn_hand_made():
    xyz = torch.tensor([[[float(i), 0., 0.] for i in range(5)]])  # x = 0..4
    centres = torch.tensor([[[3.2, 0., 0.]]])
    assert knn(3, xyz, centres).tolist() == [[[3, 4, 2]]]  # distances 0.2, 0.8, 1.2


@pytest.mark.parametrize('B,N', SHAPES)
def test_knn_matches_reference(B, N):
    xyz = _cloud(B, N)
    centres = _cloud(B, 6, seed=4)
    for k in (1, min(8, N), N):
        torch.testing.assert_close(knn(k, xyz, centres), _knn_reference(k, xyz, centres))


def test_knn_rejects_k_larger_than_n():
    with pytest.raises(ValueError, match='k must be'):
        knn(5, _cloud(1, 4), _cloud(1, 2))


def test_group_points_hand_made():
    """Offsets from the centre first, then the neighbours' features; positions only without features."""
    xyz = torch.tensor([[[0., 0., 0.], [1., 2., 3.], [5., 5., 5.]]])  # [1, 3, 3]
    feats = torch.tensor([[[7.], [8.], [9.]]])  # [1, 3, 1]
    center = torch.tensor([[[1., 1., 1.]]])  # [1, 1, 3]
    idx = torch.tensor([[[1, 2, 1]]])  # [1, 1, 3]
    expected = torch.tensor([[[[0., 1., 2., 8.], [4., 4., 4., 9.], [0., 1., 2., 8.]]]])  # [1, 1, 3, 4]
    torch.testing.assert_close(group_points(xyz, feats, center, idx), expected)
    torch.testing.assert_close(group_points(xyz, None, center, idx), expected[..., :3])


@pytest.mark.parametrize('B,C,N,M,K', [(1, 1, 5, 2, 3), (2, 4, 9, 3, 4), (3, 6, 20, 5, 2)])
def test_grouping_forward_backward_match_reference(B, C, N, M, K):
    g = torch.Generator().manual_seed(B * 100 + N)
    feats = torch.randn(B, C, N, generator=g, requires_grad=True)
    idx = torch.randint(0, N, (B, M, K), generator=g)
    idx[:, 0, :] = 0  # repeated indices: their gradients must add up
    out, ref = grouping_operation(feats, idx), _grouping_operation_reference(feats, idx)
    assert out.shape == (B, C, M, K)
    torch.testing.assert_close(out, ref)
    cot = torch.randn(B, C, M, K, generator=g)
    torch.testing.assert_close(torch.autograd.grad(out, feats, cot)[0], torch.autograd.grad(ref, feats, cot)[0])
    # gather_points is the same op in channels-last layout.
    torch.testing.assert_close(gather_points(feats.detach().transpose(1, 2), idx), ref.detach().permute(0, 2, 3, 1))


def test_cpu_tensors_never_dispatch_to_mmcv():
    assert use_mmcv(torch.zeros(1, 2, 3)) is None
    assert isinstance(mmcv_ops_available(), bool)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu():
    """CUDA (mmcv's kernels where installed, else the same PyTorch ops) vs CPU."""
    xyz = _cloud(2, 300)
    centres = xyz[:, :20]
    cu, cc = xyz.cuda(), centres.cuda()
    torch.testing.assert_close(furthest_point_sample(cu, 40).cpu(), furthest_point_sample(xyz, 40))
    torch.testing.assert_close(ball_query(0., 0.4, 8, cu, cc).cpu(), ball_query(0., 0.4, 8, xyz, centres))
    # kNN order between equidistant points may differ; compare distances.
    d_cpu = square_distance(centres, xyz).gather(2, knn(8, xyz, centres))
    d_cuda = square_distance(centres, xyz).gather(2, knn(8, cu, cc).cpu())
    torch.testing.assert_close(d_cuda, d_cpu)
    feats = torch.randn(2, 5, 300)
    idx = ball_query(0., 0.4, 8, xyz, centres)
    torch.testing.assert_close(grouping_operation(feats.cuda(), idx.cuda()).cpu(), grouping_operation(feats, idx))


@pytest.mark.skipif(not (torch.cuda.is_available() and mmcv_ops_available()), reason='needs CUDA and mmcv ops')
def test_cuda_uses_mmcv_when_present():
    assert use_mmcv(torch.zeros(1, 2, 3, device='cuda')) is not None


def test_knn_k_d_tree_path_equals_brute_force():
    """Large CPU clouds use scipy's k-d tree: the same neighbour distances as the brute-force blocks."""
    import importlib
    knn_mod = importlib.import_module("gsclip_mm.ops.knn")
    from gsclip_mm.ops.distance import square_distance
    xyz = torch.rand(2, 3000, 3, generator=torch.Generator().manual_seed(0))
    centres = xyz[:, :500]
    brute = knn_mod.knn(5, xyz, centres)  # 1.5 M pairs: below TREE_PAIRS
    tree = knn_mod._knn_tree(5, xyz, centres)
    d = square_distance(centres, xyz)
    torch.testing.assert_close(d.gather(2, tree), d.gather(2, brute), rtol=0, atol=0)
    assert (tree[..., 0] == torch.arange(500)).all()  # each centre's nearest is itself
    big = torch.rand(1, 9000, 3, generator=torch.Generator().manual_seed(1))
    assert 9000 * 9000 >= knn_mod.TREE_PAIRS  # the dispatcher takes the tree here
    torch.testing.assert_close(knn_mod.knn(3, big, big), knn_mod._knn_tree(3, big, big), rtol=0, atol=0)
