import numpy as np
import pytest
import torch

from gsclip_mm.gaussians import FitInputError, FitSettings, fit_batch, init_gaussians, knn_scales, prepare_fit_input
from gsclip_mm.gaussians.fitting import _logit, _reset_opacity, init_params, pad_batch, render_params
from gsclip_mm.gaussians.losses import photometric_loss
from gsclip_mm.gaussians.rasterize import rasterize

K = np.array([[40.0, 0, 20.5], [0, 40.0, 20.5], [0, 0, 1.0]])  # 40 x 40 image, along +z; SUN RGB-D (1-based) pixels


def synthetic_object(n=48, seed=0, size=40):
    """Points on a tilted plane at z ~ 2 and the image their Gaussians render to (uint8 [size, size, 3])."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 1.2 - 0.6
    xyz = torch.cat([xy, 2.0 + 0.3 * xy[:, :1]], 1)
    true_rgb = torch.rand(n, 3, generator=g)
    scales = torch.full((1, n, 3), 0.09)
    Kc = torch.tensor([[40.0, 0, 20.0], [0, 40.0, 20.0], [0, 0, 1.0]])  # K in gsplat's pixel convention
    img, _ = rasterize(xyz[None], torch.tensor([1.0, 0, 0, 0]).repeat(1, n, 1), scales, torch.full((1, n), 0.9),
                       true_rgb[None], torch.eye(4)[None], Kc[None], size, size, background=torch.zeros(1, 3))
    img = (img[0].clamp(0, 1) * 255).round().byte().numpy()
    rgb = (true_rgb * 0.5 + 0.25).numpy()  # a wrong start colour
    return np.concatenate([xyz.numpy(), rgb], 1).astype(np.float32), img


SMALL = dict(num_steps=60, resolution=16, max_gaussians=64, opacity_reset_interval=0, mask_target=False)


def test_knn_scales_hand_computed():
    xyz = torch.tensor([[0.0, 0, 0], [1, 0, 0], [3, 0, 0], [7, 0, 0]])
    torch.testing.assert_close(knn_scales(xyz, 1), torch.tensor([1.0, 1.0, 2.0, 4.0]))
    # k = 2: squared distances (1, 9), (1, 4), (4, 9), (16, 36)
    torch.testing.assert_close(knn_scales(xyz, 2), torch.tensor([5.0, 2.5, 6.5, 26.0]).sqrt())
    # a duplicate point gets the smallest positive scale, not 0
    assert knn_scales(torch.tensor([[0.0, 0, 0], [0, 0, 0], [2, 0, 0]]), 1).tolist() == [2.0, 2.0, 2.0]


def test_knn_scales_self_and_duplicates():
    """Self is no neighbour; a duplicate is one, at distance 0; a zero scale becomes the smallest positive one."""
    # k = 2 with a duplicate at the origin: squared distances (0, 9), (0, 9), (1, 9), (1, 16);
    # treating the duplicate like self would give (9, 16) for the first two.
    xyz = torch.tensor([[0.0, 0, 0], [0, 0, 0], [3, 0, 0], [4, 0, 0]])
    torch.testing.assert_close(knn_scales(xyz, 2), torch.tensor([4.5, 4.5, 5.0, 8.5]).sqrt())
    # Five copies (more than k + 1: the kNN op may return any four of them, self or not) and one point
    # at x = 1 whose two nearest are copies: the copies' scale 0 becomes 1, the only positive scale.
    xyz = torch.cat([torch.zeros(5, 3), torch.tensor([[1.0, 0, 0]])])
    assert knn_scales(xyz, 2).tolist() == [1.0] * 6
    assert knn_scales(torch.zeros(4, 3), 3).tolist() == [pytest.approx(1e-3)] * 4  # all coincide
    # k larger than N - 1 uses the N - 1 other points: squared distances (1, 9), (1, 4), (4, 9).
    xyz = torch.tensor([[0.0, 0, 0], [1, 0, 0], [3, 0, 0]])
    torch.testing.assert_close(knn_scales(xyz, 5), torch.tensor([5.0, 2.5, 6.5]).sqrt())


def _knn_scales_reference(xyz, k):
    """The brute force the fitting used before the kNN op: all pairwise distances (torch.cdist, as
    knn_scales measures them), self masked out, the k smallest."""
    d2 = torch.cdist(xyz, xyz, compute_mode='donot_use_mm_for_euclid_dist').square()  # [N, N]
    d2.fill_diagonal_(float('inf'))
    scales = d2.topk(min(k, len(xyz) - 1), largest=False).values.mean(1).sqrt()
    return scales.clamp_min(scales[scales > 0].min())


@pytest.mark.parametrize('k', [1, 3, 8])
def test_knn_scales_equal_brute_force_bit_for_bit(k):
    """Fits start from these scales, so they must not move by an ulp: the same values as the brute force,
    exactly (both take each distance from cdist's per-pair loop and average the same sorted values)."""
    g = torch.Generator().manual_seed(k)
    xyz = torch.randn(500, 3, generator=g)
    xyz[400:420] = xyz[:20]  # duplicates
    assert torch.equal(knn_scales(xyz, k), _knn_scales_reference(xyz, k))


def test_init_gaussians_layout():
    pts = np.array([[0, 0, 0, 0.1, 0.2, 0.3], [2, 0, 0, 1.5, 0.5, -1]], np.float32)
    g = init_gaussians(pts[:, :3], pts[:, 3:], init_opacity=0.2)
    np.testing.assert_allclose(g, [[0, 0, 0, 0.1, 0.2, 0.3, 0.2, 2, 2, 2, 1, 0, 0, 0],
                                   [2, 0, 0, 1.0, 0.5, 0.0, 0.2, 2, 2, 2, 1, 0, 0, 0]], rtol=1e-6)


def test_fit_recovers_a_rendered_object():
    pts, img = synthetic_object()
    s = FitSettings.build(SMALL)
    inp = prepare_fit_input(pts, img, K, [0, 0, 40, 40], s, 'synthetic')
    start = fit_batch([inp], FitSettings.build(SMALL, num_steps=0))[0]
    res = fit_batch([inp], s)[0]
    assert res.psnr > start.psnr + 5, (start.psnr, res.psnr)
    assert res.psnr > 24 and res.ssim > 0.8
    g = res.gaussians
    assert g.shape == (48, 14) and np.isfinite(g).all()
    np.testing.assert_array_equal(g[:, :3], pts[:, :3])  # positions stay fixed
    assert (g[:, 3:7] > 0).all() and (g[:, 3:7] < 1).all() and (g[:, 7:10] > 0).all()
    np.testing.assert_allclose(np.linalg.norm(g[:, 10:], axis=1), 1, rtol=1e-5)


def first_step(inputs, s, backend='tiles'):
    """The first render [B, R, R, 3] and the loss gradients of every parameter, from anisotropic starts."""
    batch = pad_batch(inputs, s, 'cpu')
    params = init_params(batch, s)
    with torch.no_grad():  # anisotropic, rotated Gaussians, so that rotations get gradients too
        for i, inp in enumerate(inputs):  # seeded per object: its start does not depend on the batch
            n = inp.xyz.shape[0]
            g = torch.Generator().manual_seed(n)
            params['log_scale'][i, :n] += 0.3 * torch.randn(n, 3, generator=g)
            params['quat'][i, :n] += 0.2 * torch.randn(n, 4, generator=g)
    img = render_params(params, batch, s, backend)
    photometric_loss(img, batch['target'], s.lambda_dssim).sum().backward()
    return img.detach(), {k: v.grad for k, v in params.items()}


@pytest.mark.numerics
def test_batch_equals_separate_fits_and_tiles_equal_dense():
    """What a batch fit shares with separate fits: the same renders and gradients, to round-off.

    Not the parameters after Adam: it divides each gradient by its running RMS, so a near-zero gradient's
    round-off (which differs with the object's place in the batch and the CPU's SIMD width) becomes an
    lr-sized step. Bounds: float32 round-off (eps 1.2e-7) over sums of a few hundred terms, with 20x margin
    over what was measured (6e-8 for images, 5e-7 of the largest gradient).
    """
    a, img_a = synthetic_object(40, seed=1)
    b, img_b = synthetic_object(30, seed=2)
    s = FitSettings.build(SMALL, num_steps=15, opacity_reset_interval=5)
    ia = prepare_fit_input(a, img_a, K, [0, 0, 40, 40], s, 'a')
    ib = prepare_fit_input(b, img_b, K, [2, 3, 38, 37], s, 'b')
    together_img, together = first_step([ia, ib], s)
    dense_img, dense = first_step([ia, ib], s, backend='dense')
    for i, inp in enumerate([ia, ib]):
        n = inp.xyz.shape[0]
        alone_img, alone = first_step([inp], s)
        torch.testing.assert_close(together_img[i], alone_img[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(together_img[i], dense_img[i], rtol=0, atol=1e-6)
        for k, grad in together.items():
            scale = alone[k][0].abs().max()
            assert scale > 1e-4, (k, scale)  # every parameter kind is exercised
            torch.testing.assert_close(grad[i, :n], alone[k][0, :n], rtol=0, atol=1e-5 * scale)
            torch.testing.assert_close(grad[i, :n], dense[k][i, :n], rtol=0, atol=1e-5 * scale)
            assert not grad[i, n:].any()  # padding Gaussians are culled: no gradient


@pytest.mark.numerics
def test_fit_is_deterministic_for_a_fixed_batch():
    """What resumable fitting relies on: the same batch (opacity resets included) gives the same bits."""
    a, img_a = synthetic_object(40, seed=1)
    b, img_b = synthetic_object(30, seed=2)
    s = FitSettings.build(SMALL, num_steps=15, opacity_reset_interval=5)
    inputs = [prepare_fit_input(a, img_a, K, [0, 0, 40, 40], s, 'a'),
              prepare_fit_input(b, img_b, K, [2, 3, 38, 37], s, 'b')]
    first, second = fit_batch(inputs, s), fit_batch(inputs, s)
    start = fit_batch(inputs, FitSettings.build(s, num_steps=0))
    for r1, r2, r0 in zip(first, second, start):
        np.testing.assert_array_equal(r1.gaussians, r2.gaussians)
        assert r1.psnr == r2.psnr
        assert np.abs(r1.gaussians - r0.gaussians).max() > 0.05  # it did fit


def test_opacity_reset():
    p = torch.tensor([-5.0, 0.0, 3.0], requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.1)
    p.sum().backward()
    opt.step()
    _reset_opacity(p, opt, 0.01)
    torch.testing.assert_close(torch.sigmoid(p.detach())[1:], torch.tensor([0.01, 0.01]))
    assert p[0].item() < _logit(torch.tensor(0.01)).item()  # already lower: kept
    assert opt.state[p]['exp_avg'].abs().sum() == 0 and opt.state[p]['exp_avg_sq'].abs().sum() == 0


def test_subsampling_is_seeded():
    pts, img = synthetic_object(48)
    s = FitSettings.build(SMALL, max_gaussians=20)
    x1 = prepare_fit_input(pts, img, K, [0, 0, 40, 40], s).xyz
    x2 = prepare_fit_input(pts, img, K, [0, 0, 40, 40], s).xyz
    assert x1.shape == (20, 3) and np.array_equal(x1, x2)


@pytest.mark.parametrize('case,match', [
    ('no_points', 'at least 2 points to fit Gaussians, got 0'),
    ('one_point', 'at least 2 points to fit Gaussians, got 1'),
    ('nan', '1 of 48 points have NaN/inf'), ('inf', '1 of 48 points have NaN/inf'),
    ('box_outside', 'outside the 40x40 image'), ('box_nan', '4 finite numbers'),
    ('degenerate_camera', 'degenerate'), ('no_image', 'image must be'), ('behind', 'no point projects'),
])
def test_bad_inputs(case, match):
    pts, img = synthetic_object(48)
    cam, box = K.copy(), [0, 0, 40, 40]
    if case == 'no_points':
        pts = pts[:0]
    elif case == 'one_point':
        pts = pts[:1]
    elif case == 'nan':
        pts[5, 1] = np.nan
    elif case == 'inf':
        pts[7, 4] = np.inf
    elif case == 'box_outside':
        box = [50, 10, 80, 30]
    elif case == 'box_nan':
        box = [0, np.nan, 10, 10]
    elif case == 'degenerate_camera':
        cam = np.zeros((3, 3))
    elif case == 'no_image':
        img = None
    elif case == 'behind':
        pts[:, 2] *= -1
    with pytest.raises(FitInputError, match=match) as e:
        prepare_fit_input(pts, img, cam, box, FitSettings.build(SMALL), 'scene7#2')
    assert 'scene7#2' in str(e.value)


def test_unknown_setting():
    with pytest.raises(TypeError, match='num_stepz'):
        FitSettings.build(num_stepz=3)
