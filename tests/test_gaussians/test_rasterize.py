"""The CPU rasterisers (tiles, fused) against the dense reference (image and gradients), and hand-made scenes.

tests/test_gaussians/test_rasterize_fused.py has the fused rasteriser's own cases.
"""
import pytest
import torch

from gsclip_mm.gaussians.rasterize import project_gaussians, rasterize, rasterize_dense, rasterize_tiles
from gsclip_mm.gaussians.rasterize_fused import rasterize_fused


def random_scene(B, N, W, H, seed):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(B, N, 3, generator=g) * 0.5 + torch.tensor([0.0, 0.0, 3.0])
    means[:, :2, 2] = -1.0  # two Gaussians behind the camera: culled
    quats = torch.randn(B, N, 4, generator=g)
    scales = torch.rand(B, N, 3, generator=g) * 0.1 + 0.005
    opacities = torch.rand(B, N, generator=g) * 0.95 + 0.04
    colors = torch.rand(B, N, 3, generator=g)
    viewmats = torch.eye(4).repeat(B, 1, 1)
    Ks = torch.tensor([[0.9 * W, 0, W / 2], [0, 0.9 * W, H / 2], [0, 0, 1.0]]).repeat(B, 1, 1)
    background = torch.rand(B, 3, generator=g)
    return means, quats, scales, opacities, colors, viewmats, Ks, background


def grads_of(fn, inputs, cotangent_seed=7):
    img, acc = fn(*inputs)
    g = torch.Generator().manual_seed(cotangent_seed)
    gi, ga = torch.randn(img.shape, generator=g), torch.randn(acc.shape, generator=g)
    grads = torch.autograd.grad((img * gi).sum() + (acc * ga).sum(), [x for x in inputs if x.requires_grad])
    return img, acc, grads


@pytest.mark.parametrize('B,N,W,H,tile_size', [(1, 50, 16, 16, 4), (2, 120, 23, 17, 4), (3, 80, 20, 12, 8)])
def test_tiles_match_dense_2d(B, N, W, H, tile_size):
    """Image, alpha and gradients w.r.t. every 2D input agree to float32 round-off."""
    means, quats, scales, opacities, colors, viewmats, Ks, bg = random_scene(B, N, W, H, seed=B * 100 + N)
    radii, means2d, depths, conics = project_gaussians(means, quats, scales, viewmats, Ks, W, H)
    assert (radii[:, :2] == 0).all()  # behind the camera
    inputs = [means2d.detach().requires_grad_(), conics.detach().requires_grad_(), colors.requires_grad_(),
              opacities.requires_grad_()]
    dense = grads_of(lambda m, c, col, o: rasterize_dense(m, c, col, o, depths, radii, W, H, bg), inputs)
    tiles = grads_of(lambda m, c, col, o: rasterize_tiles(m, c, col, o, depths, radii, W, H, bg, tile_size), inputs)
    assert dense[1].max() > 0.5  # the scene is not empty
    torch.testing.assert_close(tiles[0], dense[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiles[1], dense[1], rtol=1e-5, atol=1e-5)
    for gt, gd in zip(tiles[2], dense[2]):
        assert gd.abs().max() > 0
        torch.testing.assert_close(gt, gd, rtol=1e-4, atol=1e-4 * gd.abs().max().item())


def test_tiles_match_dense_3d():
    """Through the projection: gradients w.r.t. quaternions, scales, opacities, colours."""
    B, N, W, H = 2, 60, 18, 14
    means, quats, scales, opacities, colors, viewmats, Ks, bg = random_scene(B, N, W, H, seed=3)
    inputs = [quats.requires_grad_(), scales.requires_grad_(), opacities.requires_grad_(), colors.requires_grad_()]
    out = {}
    for backend in ('dense', 'tiles', 'fused'):
        out[backend] = grads_of(lambda q, s, o, c: rasterize(means, q, s, o, c, viewmats, Ks, W, H, bg,
                                                             backend=backend), inputs)
    for backend in ('tiles', 'fused'):
        torch.testing.assert_close(out[backend][0], out['dense'][0], rtol=1e-5, atol=1e-5)
        for gt, gd in zip(out[backend][2], out['dense'][2]):
            assert gd.abs().max() > 0
            torch.testing.assert_close(gt, gd, rtol=1e-4, atol=1e-4 * gd.abs().max().item())


@pytest.mark.parametrize('fn', [rasterize_dense, rasterize_tiles, rasterize_fused])
def test_two_gaussians_hand_computed(fn):
    """Red (alpha 0.5) in front of blue (alpha 0.5) at a pixel centre: 0.5 red + 0.25 blue."""
    means2d = torch.tensor([[[2.5, 1.5], [2.5, 1.5]]])  # centre of pixel (x=2, y=1)
    conics = torch.tensor([[[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]])
    colors = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])  # blue first in memory, but farther
    opacities = torch.tensor([[0.5, 0.5]])
    depths = torch.tensor([[2.0, 1.0]])
    radii = torch.full((1, 2, 2), 4, dtype=torch.int32)
    img, acc = fn(means2d, conics, colors, opacities, depths, radii, 6, 4)
    torch.testing.assert_close(img[0, 1, 2], torch.tensor([0.5, 0.0, 0.25]))
    torch.testing.assert_close(acc[0, 1, 2, 0], torch.tensor(0.75))
    # one pixel right: sigma = 0.5, alpha = 0.5 * exp(-0.5) each
    a = 0.5 * torch.exp(torch.tensor(-0.5))
    torch.testing.assert_close(img[0, 1, 3], torch.stack([a, torch.tensor(0.0), a * (1 - a)]))
    # far away: alpha below 1/255 is skipped, black
    assert img[0, 3, 5].abs().max() == 0


def test_transmittance_cutoff_like_gsplat():
    """Opaque layers stop a pixel once T would reach 1e-4: the 3rd of three 0.999 layers adds nothing."""
    n = 3
    args = (torch.full((1, n, 2), 0.5), torch.tensor([[1.0, 0.0, 1.0]]).repeat(1, n, 1), torch.eye(3)[None],
            torch.ones(1, n), torch.tensor([[1.0, 2.0, 3.0]]), torch.full((1, n, 2), 3, dtype=torch.int32), 1, 1)
    for fn in (rasterize_dense, rasterize_tiles, rasterize_fused):
        img, _ = fn(*args)
        # T after the 1st = 1e-3 > 1e-4; after the 2nd = 1e-6: the 2nd is dropped (and all after it)
        torch.testing.assert_close(img[0, 0, 0], torch.tensor([0.999, 0.0, 0.0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='gsplat CUDA rasteriser needs CUDA')
@pytest.mark.parametrize('backend', ['tiles', 'fused'])
def test_gsplat_cuda_matches_cpu(backend):
    B, N, W, H = 2, 200, 32, 24
    scene = random_scene(B, N, W, H, seed=5)
    cpu, _ = rasterize(*scene[:7], W, H, scene[7], backend=backend)
    gpu, _ = rasterize(*[x.cuda() for x in scene[:7]], W, H, scene[7].cuda(), backend='gsplat')
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=2e-3)


def test_bad_backend():
    scene = random_scene(1, 4, 8, 8, seed=0)
    with pytest.raises(ValueError, match='backend'):
        rasterize(*scene[:7], 8, 8, backend='opengl')
