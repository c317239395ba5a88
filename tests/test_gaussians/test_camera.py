import numpy as np
import pytest

from gsclip_mm.gaussians.camera import FitInputError, crop_intrinsics, decompose_depth2img, rq3


def test_rq3_hand_made():
    K = np.array([[500.0, 2.0, 320.0], [0, 480.0, 240.0], [0, 0, 1.0]])
    c, s = np.cos(0.3), np.sin(0.3)
    R = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ np.array([[0, 0, 1.0], [1, 0, 0], [0, 1, 0]])
    up, rot = rq3(2.5 * K @ R)
    np.testing.assert_allclose(up / up[2, 2], K, atol=1e-9)
    np.testing.assert_allclose(rot, R, atol=1e-12)


def test_decompose_real_depth2img(scene):
    M = scene['depth2img']
    K, R = decompose_depth2img(M)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.allclose(np.tril(K, -1), 0) and K[2, 2] == 1 and K[0, 0] > 0 and K[1, 1] > 0
    scale = np.linalg.norm(M[2])  # the last row of K @ R is R's last row: unit norm
    np.testing.assert_allclose(scale * K @ R, M, atol=1e-9)
    # SUN RGB-D: 730x530 image, principal point near the centre, square pixels
    np.testing.assert_allclose(K[:2, 2], [365.0, 265.0], atol=1.0)
    assert abs(K[0, 0] - K[1, 1]) < 0.01
    # camera frame z (depth) of the bed points is positive, and u, v land in the 2D box
    bed = scene['objects'][1]
    cam = bed['points'][:, :3] @ R.T
    assert (cam[:, 2] > 0.5).all()
    uv = cam @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    x1, y1, x2, y2 = bed['bbox']
    assert ((uv[:, 0] >= x1) & (uv[:, 0] <= x2) & (uv[:, 1] >= y1) & (uv[:, 1] <= y2)).all()


@pytest.mark.parametrize('bad,match', [(np.zeros((3, 3)), 'degenerate'), (np.ones((3, 3)), 'degenerate'),
                                       (np.full((3, 3), np.nan), 'non-finite'), (np.eye(4), '3x3'),
                                       (np.diag([1e-12, 1.0, 1.0]), 'degenerate')])
def test_degenerate_camera(bad, match):
    with pytest.raises(FitInputError, match=match):
        decompose_depth2img(bad)


def test_crop_intrinsics_hand_computed():
    K = np.array([[100.0, 0, 50.0], [0, 100.0, 40.0], [0, 0, 1.0]])
    Kc = crop_intrinsics(K, (10, 20, 30, 60), 10, 10)  # 20 x 40 region -> 10 x 10
    # 0-based image pixel (10, 20) has its SUN RGB-D centre at u=11, v=21 and is the crop's pixel (0, 0),
    # whose gsplat centre is (0.5, 0.5) before the zoom: (0.5 * 0.5, 0.5 * 0.25) after it
    np.testing.assert_allclose(Kc, [[50.0, 0, (50 - 10 - 0.5) * 0.5], [0, 25.0, (40 - 20 - 0.5) * 0.25], [0, 0, 1]])
    p = np.array([11.0 - 50, 21.0 - 40, 100.0])  # projects to u=11, v=21 with K
    uvw = Kc @ p
    np.testing.assert_allclose(uvw[:2] / uvw[2], [0.25, 0.125])


def test_pixel_convention_on_the_real_scene(scene):
    """Every point of scene 000017 takes its colour from the image pixel it projects into, exactly.

    The points come from the depth pixels, coloured by the registered image, so the colour identity is an
    exact known answer: with the camera shifted by +0.5 instead of -0.5, most points land one pixel off
    (mean colour error 0.025, 14% exact).
    """
    K, R = decompose_depth2img(scene['depth2img'])
    img = scene['img']
    H, W = img.shape[:2]
    Kc = crop_intrinsics(K, (0, 0, W, H), W, H)
    pts = np.concatenate([o['points'] for o in scene['objects']] + [scene['points']])
    uvw = (pts[:, :3].astype(np.float64) @ R.T) @ Kc.T
    col, row = np.floor(uvw[:, :2] / uvw[:, 2:]).astype(np.int64).T  # gsplat: pixel i covers [i, i + 1)
    assert col.min() >= 0 and row.min() >= 0 and col.max() < W and row.max() < H
    np.testing.assert_array_equal(img[row, col], np.round(pts[:, 3:6] * 255).astype(np.uint8))
