"""Differentiable 3DGS rasterisers behind one function, :func:`rasterize`.

* ``'gsplat'``: gsplat's CUDA ``rasterization`` (CUDA tensors only).
* ``'fused'``: the CPU default, :func:`~.rasterize_fused.rasterize_fused`:
  gsplat's tile algorithm (bin to tiles, sort by depth, composite front to
  back per pixel; backward from the back with the saved final transmittance)
  as compiled numba loops, parallel over tiles, in a ``torch.autograd.Function``.
* ``'tiles'``: our PyTorch-ops CPU rasteriser, :func:`rasterize_tiles`. gsplat has no
  CPU rasteriser (its "pure PyTorch" ``_rasterize_to_pixels`` still calls a CUDA
  kernel to find the pixel/Gaussian pairs), so we write one: each Gaussian is
  evaluated only on the pixels of the screen tiles its 3-sigma box touches,
  all pairs at once (packed, no padding), with autograd for the backward.
* ``'dense'``: :func:`rasterize_dense`, the small, obvious reference (every
  Gaussian against every pixel) that the tests compare the others with.

All share gsplat's pure-PyTorch projection (:func:`project_gaussians`) and its
compositing rules: ``alpha = min(0.999, o * exp(-sigma))``, pairs with
``alpha < 1/255`` skipped (gsplat also skips ``sigma < 0``, which cannot occur:
the conic of ``cov2d + eps2d * I`` is positive definite), front-to-back by depth, a pixel
stops once its transmittance would fall to ``1e-4`` or below.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4


def project_gaussians(means: Tensor, quats: Tensor, scales: Tensor, viewmats: Tensor, Ks: Tensor, width: int,
                      height: int, eps2d: float = 0.3, near_plane: float = 0.01,
                      camera_model: str = 'pinhole') -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Project 3D Gaussians with gsplat's pure-PyTorch code (runs on the CPU).

    Args:
        means: [B, N, 3] world positions. quats: [B, N, 4] wxyz (any norm).
        scales: [B, N, 3] (> 0). viewmats: [B, 4, 4] world to camera. Ks: [B, 3, 3].
        camera_model: gsplat's ``'pinhole'`` or ``'ortho'`` (``K`` maps camera x, y to pixels, no division).

    Returns:
        radii [B, N, 2] int (0 = culled), means2d [B, N, 2], depths [B, N],
        conics [B, N, 3] (upper triangle of the inverse 2D covariance).
    """
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci
    B, N = means.shape[:2]
    assert means.shape == (B, N, 3), means.shape
    assert quats.shape == (B, N, 4), quats.shape
    assert scales.shape == (B, N, 3), scales.shape
    assert viewmats.shape == (B, 4, 4), viewmats.shape
    assert Ks.shape == (B, 3, 3), Ks.shape
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)  # [B, N, 3, 3]
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        means, covars, viewmats[:, None], Ks[:, None], width, height, eps2d=eps2d, near_plane=near_plane,
        camera_model=camera_model)
    return radii[:, 0], means2d[:, 0], depths[:, 0], conics[:, 0]


def _check_2d(means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor, depths: Tensor,
              radii: Tensor) -> Tuple[int, int, int]:
    B, N = means2d.shape[:2]
    D = colors.shape[-1]
    assert means2d.shape == (B, N, 2), means2d.shape
    assert conics.shape == (B, N, 3), conics.shape
    assert colors.shape == (B, N, D), colors.shape
    assert opacities.shape == (B, N), opacities.shape
    assert depths.shape == (B, N), depths.shape
    assert radii.shape == (B, N, 2), radii.shape
    return B, N, D


def _alpha(dx: Tensor, dy: Tensor, conics: Tensor, opacities: Tensor) -> Tensor:
    """alpha of Gaussians at offsets (dx, dy); conics [..., 3] and opacities [...] broadcast."""
    a, b, c = conics.unbind(-1)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = (opacities * torch.exp(-sigma)).clamp_max(ALPHA_MAX)
    return torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))


def _add_background(img: Tensor, acc: Tensor, background: Optional[Tensor]) -> Tensor:
    """img [B, H, W, D] + (1 - acc [B, H, W, 1]) * background [B, D]."""
    if background is None:
        return img
    return img + (1.0 - acc) * background[:, None, None, :]


def rasterize_dense(means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor, depths: Tensor,
                    radii: Tensor, width: int, height: int,
                    background: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Reference rasteriser: every Gaussian against every pixel, O(B*H*W*N) memory.

    Args:
        means2d [B, N, 2], conics [B, N, 3], colors [B, N, D], opacities [B, N],
        depths [B, N], radii [B, N, 2] (a Gaussian with a zero radius is culled),
        background [B, D] or None.

    Returns:
        image [B, H, W, D], accumulated alpha [B, H, W, 1].
    """
    B, N, D = _check_2d(means2d, conics, colors, opacities, depths, radii)
    order = torch.argsort(depths, dim=1, stable=True)  # front to back
    take = lambda x: torch.gather(x, 1, order.view(B, N, *[1] * (x.dim() - 2)).expand_as(x))  # noqa: E731
    means2d, conics, colors, opacities, valid = map(take, (means2d, conics, colors, opacities,
                                                           (radii > 0).all(-1)))
    ys, xs = torch.meshgrid(torch.arange(height, device=means2d.device, dtype=means2d.dtype) + 0.5,
                            torch.arange(width, device=means2d.device, dtype=means2d.dtype) + 0.5, indexing='ij')
    dx = xs.reshape(1, -1, 1) - means2d[:, None, :, 0]  # [B, P, N]
    dy = ys.reshape(1, -1, 1) - means2d[:, None, :, 1]
    alpha = _alpha(dx, dy, conics[:, None], opacities[:, None]) * valid[:, None]  # [B, P, N]
    trans_incl = torch.cumprod(1.0 - alpha, dim=-1)
    trans_excl = torch.cat([torch.ones_like(alpha[..., :1]), trans_incl[..., :-1]], dim=-1)
    weights = alpha * trans_excl * (trans_incl > T_MIN)  # [B, P, N]
    img = (weights @ colors).reshape(B, height, width, D)
    acc = weights.sum(-1).reshape(B, height, width, 1)
    return _add_background(img, acc, background), acc


@torch.no_grad()
def _tile_pairs(means2d: Tensor, depths: Tensor, radii: Tensor, width: int, height: int,
                tile_size: int) -> Tuple[Tensor, Tensor, Tensor]:
    """(tile, Gaussian) pairs, sorted by tile then depth.

    A Gaussian is paired with every tile its box ``mean +- radius`` touches;
    radius = ceil(3.33 sigma) covers every pixel where ``alpha >= 1/255``
    (``sigma <= ln 255`` means at most 3.329 standard deviations), so no
    pixel the dense reference lights is missed.

    Returns:
        gauss [Q] flat Gaussian index (b * N + n), tile [Q] flat tile index
        (b * tiles_per_image + ty * tiles_x + tx), seg_start [Q] index of
        the first pair of the same tile.
    """
    B, N = depths.shape
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    valid = (radii > 0).all(-1).reshape(-1)  # [B*N]
    lo = torch.floor((means2d - radii - 0.5) / tile_size).long().reshape(-1, 2)  # [B*N, 2]
    hi = torch.floor((means2d + radii - 0.5) / tile_size).long().reshape(-1, 2)
    lo[:, 0].clamp_(0, tiles_x - 1)
    lo[:, 1].clamp_(0, tiles_y - 1)
    hi[:, 0].clamp_(0, tiles_x - 1)
    hi[:, 1].clamp_(0, tiles_y - 1)
    span = (hi - lo + 1).clamp_min(0)
    counts = span[:, 0] * span[:, 1] * valid  # [B*N]
    gauss = torch.repeat_interleave(torch.arange(B * N, device=depths.device), counts)  # [Q]
    local = torch.arange(gauss.numel(), device=depths.device) - (torch.cumsum(counts, 0) - counts)[gauss]
    tx = lo[gauss, 0] + local % span[gauss, 0]
    ty = lo[gauss, 1] + local // span[gauss, 0]
    tile = (gauss // N) * (tiles_x * tiles_y) + ty * tiles_x + tx
    rank = torch.argsort(torch.argsort(depths, dim=1, stable=True), dim=1).reshape(-1)  # depth rank within its image
    order = torch.argsort(tile * N + rank[gauss])
    gauss, tile = gauss[order], tile[order]
    tile_counts = torch.bincount(tile, minlength=B * tiles_x * tiles_y)
    seg_start = (torch.cumsum(tile_counts, 0) - tile_counts)[tile]
    return gauss, tile, seg_start


def rasterize_tiles(means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor, depths: Tensor,
                    radii: Tensor, width: int, height: int, background: Optional[Tensor] = None,
                    tile_size: int = 4) -> Tuple[Tensor, Tensor]:
    """Fast CPU rasteriser: same arguments and result as :func:`rasterize_dense`.

    Work and memory are O(Q * tile_size^2) for Q (tile, Gaussian) pairs instead
    of O(H * W * N). The per-pixel front-to-back transmittance is an exclusive
    cumulative sum of ``log(1 - alpha)`` over the packed pairs, restarted at
    each tile by subtracting the sum at the tile's first pair (in float64, so
    the global running sum does not cost precision).
    """
    B, N, D = _check_2d(means2d, conics, colors, opacities, depths, radii)
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    gauss, tile, seg_start = _tile_pairs(means2d, depths, radii, width, height, tile_size)
    local_tile = tile % (tiles_x * tiles_y)
    mean = means2d.reshape(-1, 2)[gauss]  # [Q, 2]
    a, b, c = conics.reshape(-1, 3)[gauss].unbind(-1)  # [Q] each
    # Pixel-major layout [S, Q]: the per-pixel running sums over pairs run along the contiguous
    # last dim (a cumsum along dim 0 of [Q, S] was 10x slower on the CPU).
    offs = torch.arange(tile_size, device=means2d.device, dtype=means2d.dtype)[:, None] + 0.5  # [ts, 1]
    dx = offs + ((local_tile % tiles_x) * tile_size).to(means2d.dtype) - mean[:, 0]  # [ts, Q]
    dy = offs + ((local_tile // tiles_x) * tile_size).to(means2d.dtype) - mean[:, 1]  # [ts, Q]
    # -sigma + log(o) = -(a dx^2 / 2 + c dy^2 / 2 + b dx dy) + log(o), separable but for the cross
    # term, so the [ts, ts, Q] work is three broadcast ops.
    row = -0.5 * a * dx * dx  # [ts (x), Q]
    col = -0.5 * c * dy * dy + torch.log(opacities.reshape(-1)[gauss].clamp_min(1e-30))  # [ts (y), Q]
    power = (row[None] + col[:, None]) - (b * dx)[None] * dy[:, None]  # [ts (y), ts (x), Q]
    alpha = torch.exp(power.reshape(tile_size * tile_size, -1)).clamp_max(ALPHA_MAX)  # [S, Q]
    alpha = torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))
    log_t = torch.log1p(-alpha).double()  # [S, Q]
    csum = torch.cumsum(log_t, dim=1)
    csum_excl = csum - log_t
    start = csum_excl[:, seg_start]  # running sum before the tile's first pair
    trans = torch.exp(csum_excl - start).to(alpha.dtype)
    keep = (csum - start) > math.log(T_MIN)
    weights = (alpha * trans * keep).t()  # [Q, S]
    num_tiles = B * tiles_x * tiles_y
    S = tile_size * tile_size
    contrib = weights[:, :, None] * colors.reshape(-1, D)[gauss][:, None, :]  # [Q, S, D]
    img = weights.new_zeros(num_tiles, S, D).index_add(0, tile, contrib)
    acc = weights.new_zeros(num_tiles, S).index_add(0, tile, weights)
    img = _untile(img, B, tiles_y, tiles_x, tile_size)[:, :height, :width]
    acc = _untile(acc[..., None], B, tiles_y, tiles_x, tile_size)[:, :height, :width]
    return _add_background(img, acc, background), acc


def _untile(x: Tensor, B: int, tiles_y: int, tiles_x: int, tile_size: int) -> Tensor:
    """[B * ty * tx, S, D] -> [B, ty * tile, tx * tile, D]."""
    D = x.shape[-1]
    x = x.reshape(B, tiles_y, tiles_x, tile_size, tile_size, D).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, tiles_y * tile_size, tiles_x * tile_size, D)


def rasterize(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor, viewmats: Tensor,
              Ks: Tensor, width: int, height: int, background: Optional[Tensor] = None, backend: str = 'auto',
              tile_size: int = 4, eps2d: float = 0.3, near_plane: float = 0.01,
              camera_model: str = 'pinhole') -> Tuple[Tensor, Tensor]:
    """Render B scenes, one camera each.

    Args:
        means [B, N, 3], quats [B, N, 4] (wxyz), scales [B, N, 3], opacities [B, N]
        (in [0, 1]), colors [B, N, D], viewmats [B, 4, 4] (world to camera),
        Ks [B, 3, 3], background [B, D] or None.
        backend: ``'auto'`` (gsplat on CUDA tensors, ``'fused'`` otherwise),
        ``'gsplat'``, ``'fused'``, ``'tiles'`` or ``'dense'``.
        tile_size: the ``'tiles'`` rasteriser's tile side; ``'fused'`` uses its own
        (``rasterize_fused.TILE_SIZE``) and gsplat 16, and neither's image depends on it.
        camera_model: ``'pinhole'`` (the photo's camera) or ``'ortho'`` (depth views).

    Returns:
        image [B, H, W, D], accumulated alpha [B, H, W, 1].
    """
    if backend == 'auto':
        backend = 'gsplat' if means.is_cuda else 'fused'
    if backend == 'gsplat':
        from gsplat import rasterization
        img, acc, _ = rasterization(
            means, quats, scales, opacities, colors, viewmats[:, None], Ks[:, None], width, height,
            near_plane=near_plane, eps2d=eps2d, packed=False, tile_size=16,
            backgrounds=None if background is None else background[:, None], rasterize_mode='classic',
            camera_model=camera_model)
        return img[:, 0], acc[:, 0]
    if backend not in ('fused', 'tiles', 'dense'):
        raise ValueError(f"backend must be 'auto', 'gsplat', 'fused', 'tiles' or 'dense', got {backend!r}")
    radii, means2d, depths, conics = project_gaussians(means, quats, scales, viewmats, Ks, width, height,
                                                       eps2d=eps2d, near_plane=near_plane, camera_model=camera_model)
    if backend == 'fused':
        from .rasterize_fused import rasterize_fused  # lazy: numba loads only when used
        return rasterize_fused(means2d, conics, colors, opacities, depths, radii, width, height, background)
    if backend == 'dense':
        return rasterize_dense(means2d, conics, colors, opacities, depths, radii, width, height, background)
    return rasterize_tiles(means2d, conics, colors, opacities, depths, radii, width, height, background, tile_size)
