"""SampleGaussians, NormalizeGaussians and RandomGaussianAugment on hand-made Gaussians."""
import numpy as np
import pytest

from gsclip_mm.datasets.transforms.processing import quat_multiply
from gsclip_mm.registry import TRANSFORMS
from gsclip_mm.structures import GS_DIM, GS_OPACITY, GS_QUAT, GS_RGB, GS_SCALE, GS_XYZ

# Five points whose FPS order from point 0 is 0, 1, 2, 4, 3 (squared distances in the comments).
FIVE = np.array([[0, 0, 0],    # start
                 [10, 0, 0],   # 100 from p0: first pick
                 [0, 9, 0],    # 81 from p0 (181 from p1): second
                 [1, 0, 0],    # 1 from p0: last
                 [5, 5, 0]],   # min(50, 50, 41) = 41: third
                dtype=np.float32)


def gaussians(xyz, scale=(0.1, 0.2, 0.3), quat=(1, 0, 0, 0)):
    """``[N, 14]`` with the given centres, a row index as colour, and shared scale/rotation."""
    g = np.zeros((len(xyz), GS_DIM), np.float32)
    g[:, GS_XYZ] = xyz
    g[:, GS_RGB] = np.arange(len(xyz))[:, None] / 10
    g[:, GS_OPACITY] = 0.5
    g[:, GS_SCALE] = scale
    g[:, GS_QUAT] = np.asarray(quat) / np.linalg.norm(quat)
    return g


def quat_to_rot(q):
    """wxyz unit quaternion -> [3, 3] rotation (the standard formula, written out)."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def covariance(row):
    r = quat_to_rot(row[GS_QUAT].astype(np.float64))
    return r @ np.diag(row[GS_SCALE].astype(np.float64) ** 2) @ r.T


def rot_z(theta):
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# ---------------------------------------------------------------- sampling
def fps_order(xyz, num):
    """Rows SampleGaussians(method='fps') picks from ``xyz`` ``[N, 3]``, in order (a column carries the row index)."""
    pts = np.concatenate([xyz, np.arange(len(xyz), dtype=xyz.dtype)[:, None]], 1)  # [N, 4]
    out = TRANSFORMS.build(dict(type='SampleGaussians', num_points=num, key='points'))(dict(points=pts))['points']
    return out[:, 3].astype(int).tolist()


def test_fps_five_points():
    assert fps_order(FIVE, 3) == [0, 1, 2]
    assert fps_order(FIVE, 5) == [0, 1, 2, 4, 3]


def test_fps_matches_naive_float64_reference():
    """The order of the former numpy sampler: float64 distances, first point first, lowest row among ties."""
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(200, 3)).astype(np.float32)
    xyz[100:110] = xyz[50]  # 11 copies of one position: 190 distinct positions
    picked = [0]
    for _ in range(199):  # naive: distance of every point to every picked point, each step
        d = ((xyz[:, None].astype(np.float64) - xyz[picked][None]) ** 2).sum(-1).min(1)
        picked.append(int(np.argmax(d)))  # np.argmax: the first (lowest) row among equal maxima
    assert fps_order(xyz, 200) == picked
    # After the 190 distinct positions every row is at distance 0: a tie that row 0 wins (as in mmcv's kernel).
    assert len(set(picked[:190])) == 190 and picked[190:] == [0] * 10


def test_fps_distances_in_float64():
    """Row 2 is farther from row 0 than row 1 by 4.8e-8 (0.6f^2 + 0.8f^2 = 1 + 4.8e-8 in float64), which
    float32 rounds to a tie that row 1 would win: the transform must measure in float64, as it always has."""
    xyz = np.array([[0, 0, 0], [1, 0, 0], [0.6, 0.8, 0]], np.float32)
    assert np.float32(xyz[2, 0]) ** 2 + np.float32(xyz[2, 1]) ** 2 == np.float32(1)  # the float32 tie
    assert fps_order(xyz, 2) == [0, 2]


def test_sample_gaussians_fps_and_padding():
    g = gaussians(FIVE)
    out = TRANSFORMS.build(dict(type='SampleGaussians', num_points=4))(dict(gaussians=g))['gaussians']
    np.testing.assert_array_equal(out, g[[0, 1, 2, 4]])
    out = TRANSFORMS.build(dict(type='SampleGaussians', num_points=7))(dict(gaussians=g))['gaussians']
    np.testing.assert_array_equal(out, g[[0, 1, 2, 4, 3, 0, 1]])  # every row once, then repeats in FPS order
    pts = np.concatenate([FIVE, np.ones((5, 3), np.float32)], 1)  # [5, 6] points before fitting
    out = TRANSFORMS.build(dict(type='SampleGaussians', num_points=2, key='points'))(dict(points=pts))['points']
    np.testing.assert_array_equal(out, pts[[0, 1]])


def test_sample_gaussians_random():
    g = gaussians(np.random.default_rng(0).normal(size=(50, 3)))
    np.random.seed(0)
    t = TRANSFORMS.build(dict(type='SampleGaussians', num_points=20, method='random'))
    out = t(dict(gaussians=g))['gaussians']
    rows = [int(round(r * 10)) for r in out[:, GS_RGB.start]]  # colour encodes the source row
    assert len(set(rows)) == 20 and all(0 <= r < 50 for r in rows)
    np.testing.assert_array_equal(out, g[rows])
    small = gaussians(FIVE)
    out = TRANSFORMS.build(dict(type='SampleGaussians', num_points=12, method='random'))(dict(gaussians=small))
    counts = np.bincount(np.round(out['gaussians'][:, GS_RGB.start] * 10).astype(int), minlength=5)
    assert counts.sum() == 12 and counts.min() >= 2  # all 5 rows, cycled: 3, 3, 2, 2, 2


def test_sample_gaussians_bad_input():
    with pytest.raises(ValueError, match='method'):
        TRANSFORMS.build(dict(type='SampleGaussians', num_points=4, method='grid'))
    with pytest.raises(ValueError, match=r'\(0, 14\)'):
        TRANSFORMS.build(dict(type='SampleGaussians', num_points=4))(dict(gaussians=np.zeros((0, 14), np.float32)))


# ---------------------------------------------------------------- normalisation
def test_normalize_unit_sphere_and_scales():
    xyz = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [2, 2, 0], [1, 1, 4]], np.float32)  # centroid (1, 1, 0.8)
    res = TRANSFORMS.build(dict(type='NormalizeGaussians'))(dict(gaussians=gaussians(xyz)))
    g = res['gaussians']
    radius = np.sqrt(0 ** 2 + 0 ** 2 + 3.2 ** 2)  # (1, 1, 4) is the farthest: 3.2 from the centroid
    np.testing.assert_allclose(res['norm_center'], [1, 1, 0.8], atol=1e-6)
    assert res['norm_scale'] == pytest.approx(radius)
    np.testing.assert_allclose(np.linalg.norm(g[:, GS_XYZ], axis=1).max(), 1.0, atol=1e-6)
    np.testing.assert_allclose(g[0, GS_XYZ], np.array([-1, -1, -0.8]) / radius, atol=1e-6)
    np.testing.assert_allclose(g[:, GS_SCALE], np.tile([0.1, 0.2, 0.3], (5, 1)) / radius, rtol=1e-6)
    np.testing.assert_array_equal(g[:, GS_QUAT], gaussians(xyz)[:, GS_QUAT])  # rotation untouched
    one = TRANSFORMS.build(dict(type='NormalizeGaussians'))(dict(gaussians=gaussians(FIVE[:1] + 3)))
    assert one['norm_scale'] == 1.0 and not one['gaussians'][:, GS_XYZ].any()


# ---------------------------------------------------------------- augmentation
def test_augment_fixed_rotation_and_scale_hand_checked():
    q = np.array([np.cos(np.pi / 12), np.sin(np.pi / 12), 0, 0])  # 30 degrees about x
    g = gaussians(np.array([[1, 0, 0], [0, 0, 2]], np.float32), quat=q)
    t = TRANSFORMS.build(dict(type='RandomGaussianAugment', rot_range=(np.pi / 2, np.pi / 2), scale_range=(2, 2),
                              jitter_std=0))
    out = t(dict(gaussians=g.copy()))['gaussians']
    np.testing.assert_allclose(out[:, GS_XYZ], [[0, 2, 0], [0, 0, 4]], atol=1e-6)  # x -> y, doubled
    np.testing.assert_allclose(out[:, GS_SCALE], [[0.2, 0.4, 0.6]] * 2, rtol=1e-6)
    # 90 degrees about z after 30 about x: (cos45, 0, 0, sin45) * (cos15, sin15, 0, 0)
    c45, s45, c15, s15 = np.cos(np.pi / 4), np.sin(np.pi / 4), np.cos(np.pi / 12), np.sin(np.pi / 12)
    np.testing.assert_allclose(out[0, GS_QUAT], [c45 * c15, c45 * s15, s45 * s15, s45 * c15], atol=1e-6)
    np.testing.assert_array_equal(out[:, GS_RGB], g[:, GS_RGB])


def test_augment_random_rotation_keeps_world_covariance():
    q = np.array([0.8, 0.2, -0.4, 0.4])
    g = gaussians(np.array([[1, 0, 0]], np.float32), scale=(0.05, 0.1, 0.3), quat=q)
    np.random.seed(1)
    t = TRANSFORMS.build(dict(type='RandomGaussianAugment', jitter_std=0))
    for _ in range(3):
        out = t(dict(gaussians=g.copy()))['gaussians'][0]
        theta = np.arctan2(out[1], out[0])  # where (1, 0, 0) went gives the rotation ...
        k = np.linalg.norm(out[GS_XYZ])  # ... and the scale factor
        assert 0.8 <= k <= 1.2 and abs(out[2]) < 1e-6
        expect = k ** 2 * rot_z(theta) @ covariance(g[0]) @ rot_z(theta).T
        np.testing.assert_allclose(covariance(out), expect, atol=1e-6)
        assert np.linalg.norm(out[GS_QUAT]) == pytest.approx(1, abs=1e-6)


def test_augment_jitter_bounded_and_xyz_only():
    g = gaussians(FIVE)
    np.random.seed(2)
    t = TRANSFORMS.build(dict(type='RandomGaussianAugment', rot_range=(0, 0), scale_range=(1, 1), jitter_std=0.01,
                              jitter_clip=0.015))
    out = t(dict(gaussians=g.copy()))['gaussians']
    delta = out[:, GS_XYZ] - g[:, GS_XYZ]
    assert np.abs(delta).max() <= 0.015 + 1e-6 and np.abs(delta).min() > 0
    np.testing.assert_allclose(out[:, GS_XYZ.stop:], g[:, GS_XYZ.stop:], atol=1e-7)
    with pytest.raises(ValueError, match='scale_range'):
        TRANSFORMS.build(dict(type='RandomGaussianAugment', scale_range=(0, 1)))
    with pytest.raises(ValueError, match=r'\(5, 6\)'):
        t(dict(gaussians=np.zeros((5, 6), np.float32)))


def test_quat_multiply_matches_rotation_product():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=4), rng.normal(size=4)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    np.testing.assert_allclose(quat_to_rot(quat_multiply(a, b)), quat_to_rot(a) @ quat_to_rot(b), atol=1e-12)
