"""The fused CPU rasteriser (numba kernels) against the dense reference and the tile rasteriser.

Tolerances. Images: 1e-5. Each rasteriser composites in float32 with its own exp (ours: a polynomial
within 1.7 ulp; the reference: torch's) and its own summation order, so a pixel that sums k weights,
each a product of up to k factors, differs by a few k ulps (k <= 60 here: ~1e-6 at most). A wrong
rule (a Gaussian missed, added, or composited out of order) moves a pixel by at least
ALPHA_MIN x colour ~ 4e-3 x colour. Gradients: rtol 1e-4 and atol 1e-4 of the largest gradient:
the backward divides the transmittance back out (``T / (1 - alpha)``) and subtracts the colour
behind (gsplat's formula), where autograd differentiates the reference's cumulative product, so
small components carry the large ones' round-off (measured: below 3e-7 of the largest).
"""
import math
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from gsclip_mm.gaussians import rasterize_fused as fused_module
from gsclip_mm.gaussians.rasterize import rasterize, rasterize_dense, rasterize_tiles
from gsclip_mm.gaussians.rasterize_fused import rasterize_fused

GAUSSIANS_DIR = osp.dirname(osp.abspath(fused_module.__file__))


def scene_2d(B, N, W, H, D=3, seed=0, dtype=torch.float32, sigma=(0.3, 2.8), opacity=(0.05, 0.95)):
    """Screen-space Gaussians as the projection gives them.

    Covariances with gsplat's eps2d = 0.3 added, conics their inverse, radii ceil(3.33 sigma) per
    axis (so the box holds every pixel with alpha >= 1/255). Means up to 4 px beyond the image,
    so some are partly off-screen; per image, Gaussian 0 is culled (radius 0), Gaussian 1 sits
    on the left edge (partly off-screen) and Gaussian 2 is opaque and centred on a pixel, where its
    alpha clamps at 0.999 (so that pixel's alpha is at least 0.999).

    Returns:
        means2d [B, N, 2], conics [B, N, 3], colors [B, N, D], opacities [B, N], depths [B, N],
        radii [B, N, 2] int32, background [B, D].
    """
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    means2d = rand(B, N, 2) * torch.tensor([W + 8.0, H + 8.0], dtype=torch.float64) - 4.0
    means2d[:, 1] = torch.tensor([-1.2, H / 2], dtype=torch.float64)
    means2d[:, 2] = torch.tensor([W // 2 + 0.5, H // 2 + 0.5], dtype=torch.float64)
    theta = rand(B, N) * math.pi
    sx, sy = (rand(B, N, 2) * (sigma[1] - sigma[0]) + sigma[0]).unbind(-1)
    cos, sin = theta.cos(), theta.sin()
    cxx = cos * cos * sx * sx + sin * sin * sy * sy + 0.3
    cyy = sin * sin * sx * sx + cos * cos * sy * sy + 0.3
    cxy = cos * sin * (sx * sx - sy * sy)
    det = cxx * cyy - cxy * cxy
    conics = torch.stack([cyy / det, -cxy / det, cxx / det], -1)
    radii = torch.stack([torch.ceil(3.33 * cxx.sqrt()), torch.ceil(3.33 * cyy.sqrt())], -1).int()
    radii[:, 0] = 0
    opacities = rand(B, N) * (opacity[1] - opacity[0]) + opacity[0]
    opacities[:, 2] = 1.0
    colors, depths, background = rand(B, N, D), rand(B, N) + 1.0, rand(B, D)
    cast = lambda x: x.to(dtype)  # noqa: E731
    return (cast(means2d), cast(conics), cast(colors), cast(opacities), cast(depths), radii, cast(background))


def grads_of(fn, inputs, cotangent_seed=7):
    """image, alpha, and the gradients of a random linear function of both w.r.t. ``inputs``."""
    img, acc = fn(*inputs)
    g = torch.Generator().manual_seed(cotangent_seed)
    gi = torch.randn(img.shape, generator=g, dtype=img.dtype)
    ga = torch.randn(acc.shape, generator=g, dtype=acc.dtype)
    return img, acc, torch.autograd.grad((img * gi).sum() + (acc * ga).sum(), inputs)


def leaves(scene):
    """means2d, conics, colors, opacities as fresh leaves that require grad."""
    return [x.detach().clone().requires_grad_() for x in scene[:4]]


def assert_same(out, ref, grad_rtol=1e-4):
    """Image and alpha to 1e-5, gradients to rtol / atol of the largest (module docstring)."""
    torch.testing.assert_close(out[0], ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1], ref[1], rtol=1e-5, atol=1e-5)
    for got, want in zip(out[2], ref[2]):
        assert want.abs().max() > 0
        torch.testing.assert_close(got, want, rtol=grad_rtol, atol=grad_rtol * want.abs().max().item())


@pytest.mark.parametrize('B,N,W,H,D', [(1, 20, 16, 16, 3), (3, 200, 40, 33, 3), (2, 120, 23, 17, 1),
                                       (1, 300, 37, 29, 3), (3, 60, 9, 7, 1)])
def test_matches_dense(B, N, W, H, D):
    """Image, alpha and all four gradients (with background; sizes not multiples of the tile)."""
    scene = scene_2d(B, N, W, H, D, seed=B * 1000 + N)
    depths, radii, bg = scene[4:]
    inputs = leaves(scene)
    dense = grads_of(lambda m, c, col, o: rasterize_dense(m, c, col, o, depths, radii, W, H, bg), inputs)
    fused = grads_of(lambda m, c, col, o: rasterize_fused(m, c, col, o, depths, radii, W, H, bg), inputs)
    assert dense[1].max() >= 0.999 and (dense[1] < 0.9).any()  # the clamped pixel, and thin parts
    assert_same(fused, dense)


def test_matches_tiles_larger_scene():
    """The twin CPU rasteriser on a scene with many Gaussians per pixel (up to ~60 composited)."""
    B, N, W, H = 2, 1500, 61, 47
    scene = scene_2d(B, N, W, H, seed=11, opacity=(0.02, 0.3))
    depths, radii, bg = scene[4:]
    inputs = leaves(scene)
    tiles = grads_of(lambda m, c, col, o: rasterize_tiles(m, c, col, o, depths, radii, W, H, bg), inputs)
    fused = grads_of(lambda m, c, col, o: rasterize_fused(m, c, col, o, depths, radii, W, H, bg), inputs)
    assert_same(fused, tiles)


def test_transmittance_runs_out():
    """40 layers of alpha 0.5 at a pixel centre: T = 2^-k exactly; gsplat stops before the layer
    that would take T to 1e-4 or below, so 13 layers count (2^-14 < 1e-4 < 2^-13): alpha is exactly
    1 - 2^-13, the 14th layer's (blue) colour is absent there, and only the first 13 get gradients."""
    n, W, H = 40, 5, 3
    means2d = torch.full((1, n, 2), 0.5).add(torch.tensor([2.0, 1.0]))  # centre of pixel (2, 1)
    conics = torch.tensor([1.0, 0.0, 1.0]).repeat(1, n, 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    depths = order.float()[None] + 1.0  # stacked in a shuffled memory order
    colors = torch.tensor([1.0, 0.0, 0.0]).repeat(1, n, 1)
    colors[0, order == 13] = torch.tensor([0.0, 0.0, 1.0])  # the 14th from the front
    opacities = torch.full((1, n), 0.5)
    radii = torch.full((1, n, 2), 4, dtype=torch.int32)
    inputs = [x.clone().requires_grad_() for x in (means2d, conics, colors, opacities)]
    outs = {}
    for name, fn in (('dense', rasterize_dense), ('fused', rasterize_fused)):
        outs[name] = grads_of(lambda m, c, col, o: fn(m, c, col, o, depths, radii, W, H), inputs)
        img, acc = outs[name][:2]
        assert acc[0, 1, 2, 0].item() == 1.0 - 2.0 ** -13
        assert img[0, 1, 2, 2].item() == 0.0  # no blue from the 14th layer
        assert img[0, 1, 2, 0].item() == 1.0 - 2.0 ** -13
    assert_same(outs['fused'], outs['dense'])
    # the centre pixel alone: colour gradients are the layers' weights 2^-(k+1), zero from the 14th on
    img, _ = rasterize_fused(*inputs, depths, radii, W, H)
    (v_colors, ) = torch.autograd.grad(img[0, 1, 2, 0], inputs[2])
    expected = torch.where(order < 13, 0.5 ** (order.double() + 1), torch.zeros(n, dtype=torch.float64)).float()
    assert torch.equal(v_colors[0, :, 0], expected)


def test_equal_depths_keep_index_order():
    """Ties in depth composite in index order (a stable sort), as the reference: the first is in front."""
    means2d = torch.tensor([[[2.5, 1.5], [2.5, 1.5]]])
    conics = torch.tensor([[[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]])
    colors = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])
    args = (means2d, conics, colors, torch.tensor([[0.5, 0.5]]), torch.tensor([[2.0, 2.0]]),
            torch.full((1, 2, 2), 4, dtype=torch.int32), 6, 4)
    img = rasterize_fused(*args)[0]
    assert torch.equal(img[0, 1, 2], torch.tensor([0.25, 0.0, 0.5]))
    assert torch.equal(img, rasterize_dense(*args)[0])


def test_gradcheck_float64():
    """torch.autograd.gradcheck (finite differences) of every input, both outputs, in float64.

    Moderate opacities keep every pixel's T far from 1e-4 and alpha below the 0.999 clamp; no
    pixel's alpha lies within the 1e-6 step of 1/255 (where alpha is discontinuous), as the
    deterministic scene was checked to satisfy.
    """
    B, N, W, H, D = 2, 5, 7, 6, 2
    scene = scene_2d(B, N, W, H, D, seed=3, dtype=torch.float64, sigma=(1.0, 2.5), opacity=(0.2, 0.7))
    depths, radii, bg = scene[4:]
    opacities = scene[3].clone()
    opacities[:, 2] = 0.6  # scene_2d makes Gaussian 2 opaque: not here
    inputs = [x.detach().clone().requires_grad_() for x in (scene[0], scene[1], scene[2], opacities, bg)]
    assert torch.autograd.gradcheck(lambda m, c, col, o, b: rasterize_fused(m, c, col, o, depths, radii, W, H, b),
                                    inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_image_independent_of_tile_size_and_threads():
    """A pixel sees the same Gaussians in the same order for any tile size: identical images.
    Per-pair gradient rows summed in a fixed order: identical gradients for any thread count."""
    B, N, W, H = 2, 300, 37, 29
    scene = scene_2d(B, N, W, H, seed=5)
    depths, radii, bg = scene[4:]
    inputs = leaves(scene)
    by_tile = {t: grads_of(lambda m, c, col, o: rasterize_fused(m, c, col, o, depths, radii, W, H, bg, t), inputs)
               for t in (4, 8, 16)}
    for t in (4, 16):
        assert torch.equal(by_tile[t][0], by_tile[8][0]) and torch.equal(by_tile[t][1], by_tile[8][1])
        for got, want in zip(by_tile[t][2], by_tile[8][2]):  # summation order differs: round-off only
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = grads_of(lambda m, c, col, o: rasterize_fused(m, c, col, o, depths, radii, W, H, bg), inputs)
        torch.set_num_threads(1)
        one = grads_of(lambda m, c, col, o: rasterize_fused(m, c, col, o, depths, radii, W, H, bg), inputs)
    finally:
        torch.set_num_threads(before)
    for a, b in zip([one[0], one[1], *one[2]], [two[0], two[1], *two[2]]):
        assert torch.equal(a, b)


def test_culled_offscreen_and_transparent_get_nothing():
    """Radius 0 (culled), a box wholly off-screen, opacity 0 (fitting's padding): no pixel changes and
    exact zero gradients, in a scene whose other Gaussians get gradients."""
    B, N, W, H = 1, 40, 20, 14
    scene = list(scene_2d(B, N, W, H, seed=8))
    scene[0] = scene[0].clone()
    scene[0][0, 5] = torch.tensor([-30.0, 5.0])  # box far left of the image
    scene[3] = scene[3].clone()
    scene[3][0, 6] = 0.0
    depths, radii, bg = scene[4:]
    inputs = leaves(scene)
    img, acc, (v_m, v_c, v_col, v_o) = grads_of(
        lambda m, c, col, o: rasterize_fused(m, c, col, o, depths, radii, W, H, bg), inputs)
    for n in (0, 5, 6):  # opacity 0 too, as in the reference: alpha < 1/255 is skipped, gradient and all
        for grad in (v_m, v_c, v_col, v_o):
            assert torch.equal(grad[0, n], torch.zeros_like(grad[0, n]))
    assert v_col[0, 7:].abs().sum() > 0 and v_o[0, 7:].abs().sum() > 0
    keep = torch.ones(N, dtype=torch.bool)
    keep[[0, 5, 6]] = False
    without = rasterize_fused(*[x[:, keep] for x in scene[:5]], radii[:, keep], W, H, bg)
    assert torch.equal(without[0], img) and torch.equal(without[1], acc)


def test_empty_scene_is_background():
    B, N, W, H = 2, 6, 10, 7
    scene = scene_2d(B, N, W, H, seed=2)
    radii = torch.zeros_like(scene[5])
    inputs = leaves(scene)
    img, acc, grads = grads_of(lambda m, c, col, o: rasterize_fused(m, c, col, o, scene[4], radii, W, H, scene[6]),
                               inputs)
    assert torch.equal(img, scene[6][:, None, None, :].expand(B, H, W, 3))
    assert torch.equal(acc, torch.zeros(B, H, W, 1))
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)


def test_auto_backend_is_fused_on_cpu():
    B, N, W, H = 2, 50, 20, 15
    g = torch.Generator().manual_seed(4)
    means = torch.randn(B, N, 3, generator=g) * 0.5 + torch.tensor([0.0, 0.0, 3.0])
    quats, scales = torch.randn(B, N, 4, generator=g), torch.rand(B, N, 3, generator=g) * 0.1 + 0.01
    opacities, colors = torch.rand(B, N, generator=g), torch.rand(B, N, 3, generator=g)
    Ks = torch.tensor([[0.9 * W, 0, W / 2], [0, 0.9 * W, H / 2], [0, 0, 1.0]]).repeat(B, 1, 1)
    args = (means, quats, scales, opacities, colors, torch.eye(4).repeat(B, 1, 1), Ks, W, H)
    auto, fused = rasterize(*args), rasterize(*args, backend='fused')
    assert auto[1].max() > 0.5
    assert torch.equal(auto[0], fused[0]) and torch.equal(auto[1], fused[1])


def test_refuses_mixed_dtypes():
    scene = scene_2d(1, 4, 8, 8)
    with pytest.raises(TypeError, match='float32 or float64'):
        rasterize_fused(scene[0].double(), *scene[1:6], 8, 8)


def _run(code, **env):
    """Run python code in a fresh interpreter (env: extra variables); return the CompletedProcess."""
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=600)


@pytest.mark.skipif('NUMBA_THREADING_LAYER' in os.environ, reason='the test is of the layer the module selects')
def test_works_in_a_forked_child_after_use():
    """DataLoader workers fork: numba's default (GNU OpenMP) layer kills such a child once the parent
    has run a parallel kernel; the module selects the fork-safe workqueue layer."""
    out = _run('''
        import os, torch
        from gsclip_mm.gaussians.rasterize_fused import rasterize_fused
        args = (torch.tensor([[[3.5, 2.5]]]), torch.tensor([[[1.0, 0.0, 1.0]]]), torch.ones(1, 1, 3),
                torch.full((1, 1), 0.5), torch.ones(1, 1), torch.full((1, 1, 2), 4, dtype=torch.int32), 8, 8)
        parent = rasterize_fused(*args)[0]
        pid = os.fork()
        if pid == 0:
            os._exit(0 if torch.equal(rasterize_fused(*args)[0], parent) and parent.max() == 0.5 else 3)
        _, status = os.waitpid(pid, 0)
        print('child status', status)
    ''')
    assert out.returncode == 0, out.stderr
    assert 'child status 0' in out.stdout, out.stdout + out.stderr


def _can_mount_read_only():
    """Whether this process may make a private mount namespace with a read-only bind mount (root)."""
    if shutil.which('unshare') is None:
        return False
    probe = ['unshare', '-m', 'sh', '-c', 'mount --bind -o ro "$0" "$0" && ! touch "$0/x" 2>/dev/null', GAUSSIANS_DIR]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_mount_read_only(), reason='needs unshare -m and mount (root) for a read-only install')
@pytest.mark.parametrize('home_writable', [True, False])
def test_read_only_install(tmp_path, home_writable):
    """The module in a read-only directory still imports and runs; the compile cache goes to the
    user-wide cache (~/.cache/numba), or, when nothing is writable, is off with one warning."""
    pkg, home = tmp_path / 'pkg', tmp_path / 'home'
    pkg.mkdir()
    home.mkdir()
    (pkg / '__init__.py').write_text('')
    for name in ('_constants.py', 'rasterize_fused.py'):
        shutil.copy(osp.join(GAUSSIANS_DIR, name), pkg / name)
    code = textwrap.dedent('''
        import sys, warnings, numpy as np
        sys.path.insert(0, sys.argv[1])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            from pkg import rasterize_fused as rf
        print('warnings', len(caught), *[str(w.message)[:60] for w in caught])
        geom = rf._pack_geometry(np.array([[1.0, 2.0]], np.float32), np.ones((1, 3), np.float32),
                                 np.ones(1, np.float32), np.ones((1, 2), np.int32), 0.0)
        print('geom', geom[0, :2].tolist())
    ''')
    mounts = f'mount --bind -o ro {pkg} {pkg}' + ('' if home_writable else f' && mount --bind -o ro {home} {home}')
    env = {k: v for k, v in os.environ.items() if k not in ('NUMBA_CACHE_DIR', 'XDG_CACHE_HOME')}
    out = subprocess.run(['unshare', '-m', 'sh', '-c', f'{mounts} && exec "$0" -c "$1" "$2"', sys.executable, code,
                          str(tmp_path)], capture_output=True, text=True, env=dict(env, HOME=str(home)), timeout=600)
    assert out.returncode == 0, out.stderr
    assert 'geom [1.0, 2.0]' in out.stdout
    assert not list(pkg.rglob('*.nb*')) and not (pkg / '__pycache__').exists()
    cached = list(home.rglob('*.nbi'))
    if home_writable:
        assert 'warnings 0' in out.stdout
        assert any(p.name.startswith('rasterize_fused._pack_geometry') for p in cached), cached
    else:
        assert 'warnings 1 gsclip_mm: numba finds no writable cache directory' in out.stdout, out.stdout
        assert not cached


def test_opacity_radii_known_answer():
    """An axis-aligned Gaussian (sigma 2 along x, 1 along y) of opacity o reaches alpha 1/255 at
    sigma = log(255 o): x extent 2 sqrt(2 log(255 o)), y half of it; under 1/255 it is culled."""
    conics = torch.tensor([[0.25, 0.0, 1.0]] * 3, dtype=torch.float64).numpy()
    radii = torch.tensor([[50, 50], [50, 50], [3, 50]], dtype=torch.int32).numpy()
    o = torch.tensor([0.01, 0.003, 0.9], dtype=torch.float64).numpy()
    r = fused_module._opacity_radii(conics, o, radii, 0.0)
    t = math.log(0.01 * 255)
    assert r[0, 0] == pytest.approx(2 * math.sqrt(2 * t) * 1.001 + 1e-3, rel=1e-12)
    assert r[0, 1] == pytest.approx(math.sqrt(2 * t) * 1.001 + 1e-3, rel=1e-12)
    assert r[0, 0] < 2 * 1.4 * 2  # about 1.37 sigma, not gsplat's 3
    assert (r[1] == 0).all()  # opacity under 1/255: no pixel can reach alpha 1/255
    assert r[2, 0] == 3  # never wider than gsplat's box


def test_matches_dense_at_low_opacity():
    """After an opacity reset (opacities about 0.01) the boxes shrink most: still the dense image."""
    scene = scene_2d(2, 150, 31, 27, 3, seed=5, opacity=(0.003, 0.03))
    depths, radii, bg = scene[4:]
    inputs = leaves(scene)
    dense = grads_of(lambda m, c, col, o: rasterize_dense(m, c, col, o, depths, radii, 31, 27, bg), inputs)
    fused = grads_of(lambda m, c, col, o: rasterize_fused(m, c, col, o, depths, radii, 31, 27, bg), inputs)
    assert_same(fused, dense)
