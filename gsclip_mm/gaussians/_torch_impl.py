"""PyTorch-ops twins of the fused rasteriser (as gsplat's ``cuda/_torch_impl.py``): the references.

* :func:`rasterize_dense`: every Gaussian against every pixel, the small,
  obvious reference that the tests compare the others with.
* :func:`rasterize_tiles`: each Gaussian evaluated only on the pixels of the
  screen tiles its 3-sigma box touches, all pairs at once (packed), with
  autograd for the backward; ours, as gsplat has no CPU rasteriser.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._constants import ALPHA_MAX, ALPHA_MIN, T_MIN, add_background, check_2d


def _alpha(dx: Tensor, dy: Tensor, conics: Tensor, opacities: Tensor) -> Tensor:
    """alpha of Gaussians at offsets (dx, dy); conics [..., 3] and opacities [...] broadcast."""
    a, b, c = conics.unbind(-1)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = (opacities * torch.exp(-sigma)).clamp_max(ALPHA_MAX)
    return torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))


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
    B, N, D = check_2d(means2d, conics, colors, opacities, depths, radii)
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
    return add_background(img, acc, background), acc


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
    B, N, D = check_2d(means2d, conics, colors, opacities, depths, radii)
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
    return add_background(img, acc, background), acc


def _untile(x: Tensor, B: int, tiles_y: int, tiles_x: int, tile_size: int) -> Tensor:
    """[B * ty * tx, S, D] -> [B, ty * tile, tx * tile, D]."""
    D = x.shape[-1]
    x = x.reshape(B, tiles_y, tiles_x, tile_size, tile_size, D).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, tiles_y * tile_size, tiles_x * tile_size, D)
