"""The fused CPU rasteriser: gsplat's tile algorithm as compiled loops (numba), forward and backward.

:func:`rasterize_fused` takes and returns what :func:`~._torch_impl.rasterize_dense`
does and follows the same compositing rules (``_constants.py`` and ``rasterize.py``'s module
docstring), in four compiled steps:

1. :func:`_bin_gaussians`: pair each Gaussian with the screen tiles its box
   ``mean +- radius`` touches, and sort the pairs by tile, then by depth (a
   stable counting sort, visiting the Gaussians front to back). The box is
   gsplat's (3 sigma of the widest axis), shrunk per axis to where alpha can
   still reach ``ALPHA_MIN`` (:func:`_opacity_radii`: a Gaussian of opacity
   0.01, as after an opacity reset, needs 1.4 sigma, not 3); pixels outside
   it are skipped by the alpha test anyway, so the image is the same.
2. :func:`_forward_kernel`: per tile (tiles dealt round-robin to one worker
   per thread), composite the tile's Gaussians front to back into its pixels,
   the pixel loop innermost and branch-free so that LLVM vectorises it (over
   the tile rows the Gaussian's box touches); save each pixel's final
   transmittance and how many of the tile's pairs it used (up to and including
   its last contributor, gsplat's ``last_ids``).
3. :func:`_backward_kernel`: per tile, walk the pairs from the back, recover
   the transmittance in front of each Gaussian from the final one
   (``T /= 1 - alpha``) and the colour behind it from a running sum, as
   gsplat's CUDA backward does; write each pair's gradient (summed over the
   tile's pixels) to its own row.
4. :func:`_sum_pairs`: per Gaussian, add its pairs' rows in a fixed order.

So every result is the same whatever the number of threads (no atomics, no
thread-order sums), and the image is bit-identical for every tile size (a
pixel sees the same Gaussians in the same order). Arithmetic is in the
inputs' dtype (float32 like gsplat, or float64 for ``gradcheck``), IEEE
strict (no fastmath), with one expression for alpha in both passes, so
forward and backward decide ``alpha >= 1/255`` on bit-identical values. In
float32, exp is a polynomial (:func:`_exp_neg`, within 1.7 ulp of the exact
value; libm's ``expf`` would keep the loops scalar).

Threads: ``torch.get_num_threads()`` at each call (numba's own pool, at most
``NUMBA_NUM_THREADS``). Unless ``NUMBA_THREADING_LAYER`` is set, this module
selects numba's ``workqueue`` layer: the default ``omp`` layer (GNU OpenMP)
kills a child forked after the parent ran a parallel kernel ("fork() called
from a process already using GNU OpenMP"), which DataLoader workers do; the
workqueue is fork-safe but not thread-safe, which holds here because the
kernels hold the GIL (no ``nogil``), so two Python threads never launch at once.

Compile cache: the kernels are compiled on first use (a few seconds, per
dtype) and cached on disk (numba ``cache=True``): in ``__pycache__`` next to
this file when that is writable, else numba's user-wide cache directory
(``~/.cache/numba``), or ``NUMBA_CACHE_DIR`` when set; a read-only install
therefore still imports and caches. Where no cache location is writable at
all the kernels are compiled uncached in every process.
"""
import math
import os
import warnings
from typing import Optional, Tuple

import numba
import numpy as np
import torch
from numba import prange
from numba.core import types
from numba.extending import overload
from torch import Tensor
from torch.autograd.function import once_differentiable

from ._constants import ALPHA_MAX, ALPHA_MIN, T_MIN, add_background, check_2d

if 'NUMBA_THREADING_LAYER' not in os.environ:
    numba.config.THREADING_LAYER = 'workqueue'  # fork-safe (module docstring)

#: Tile side in pixels. The image does not depend on it; 8 x 8 was the fastest of 4, 8, 16 here.
TILE_SIZE = 8

# A pixel whose sigma exceeds log(o / ALPHA_MIN) by this much has alpha < ALPHA_MIN for certain
# (skipped without looking at exp); the margin keeps round-off from skipping one the exact test keeps.
_SIGMA_MARGIN = 1e-2

# float32 exp(-x) (see _exp_neg): Cody-Waite split of ln 2 (LN2_HI has 12 significant bits, so
# n * LN2_HI is exact) and the Taylor coefficients 1/i! of a degree-7 polynomial on |r| <= ln(2)/2.
_LN2_HI, _LN2_LO = np.float32(0.693145751953125), np.float32(1.428606765330187e-06)
_LOG2E, _X_MAX = np.float32(1.4426950408889634), np.float32(20.0)
_C0, _C1, _C2, _C3 = np.float32(1.0), np.float32(1.0), np.float32(1 / 2), np.float32(1 / 6)
_C4, _C5, _C6, _C7 = np.float32(1 / 24), np.float32(1 / 120), np.float32(1 / 720), np.float32(1 / 5040)
_F32_HALF, _F32_ONE, _F32_ZERO = np.float32(0.5), np.float32(1.0), np.float32(0.0)


def _jit(**options):
    """numba.njit with the on-disk cache, or without it where no cache directory is writable.

    ``error_model='numpy'``: a float division by zero gives inf instead of Python's
    ZeroDivisionError, whose check is a branch that stops LLVM vectorising the loop.
    """
    def wrap(fn):
        global _CACHE_WARNED
        try:
            return numba.njit(cache=True, error_model='numpy', **options)(fn)
        except RuntimeError as err:  # numba: "cannot cache function ...: no locator available for file"
            if not _CACHE_WARNED:
                warnings.warn(f'gsclip_mm: numba finds no writable cache directory ({err}); the fused '
                              f'rasteriser compiles in every process. Set NUMBA_CACHE_DIR to cache it.')
                _CACHE_WARNED = True
            return numba.njit(cache=False, error_model='numpy', **options)(fn)
    return wrap


_CACHE_WARNED = False


def _exp_neg(x):
    """exp(-x): a stub that numba replaces by :func:`_exp_neg_impl`."""
    return math.exp(-x)


@overload(_exp_neg, inline='always')
def _exp_neg_impl(x):
    """float32: exp(-x) for x in [0, 20] (clamped) in plain arithmetic, so LLVM vectorises the pixel
    loops that call it (libm's expf would be a scalar call); at most 1.7 ulp from the exact value
    (measured on 2M points of [0, 6]). float64 (gradcheck): libm's exp."""
    if x != types.float32:
        return lambda x: math.exp(-x)

    def impl(x):
        x = min(max(x, _F32_ZERO), _X_MAX)
        n = np.int32(x * _LOG2E + _F32_HALF)  # round(x / ln 2), 0 .. 29
        nf = np.float32(n)
        r = (nf * _LN2_HI - x) + nf * _LN2_LO  # -x + n ln 2, |r| <= 0.35
        p = ((((((_C7 * r + _C6) * r + _C5) * r + _C4) * r + _C3) * r + _C2) * r + _C1) * r + _C0
        # times 2^-n, by n's bits (selects vectorise; a table lookup would be a gather)
        p = p * (_F32_HALF if n & 1 else _F32_ONE)
        p = p * (np.float32(0.25) if n & 2 else _F32_ONE)
        p = p * (np.float32(2.0 ** -4) if n & 4 else _F32_ONE)
        p = p * (np.float32(2.0 ** -8) if n & 8 else _F32_ONE)
        return p * (np.float32(2.0 ** -16) if n & 16 else _F32_ONE)
    return impl


@_jit(inline='always')
def _lane_sum(x, lanes):
    """Sum of x [S] in a fixed order (8 interleaved partial sums, then a tree): LLVM vectorises it
    without fastmath's reassociation, and the result does not depend on the CPU's vector width."""
    S = x.shape[0]
    lanes[:] = 0
    for s0 in range(0, S - S % 8, 8):
        for lane in range(8):
            lanes[lane] += x[s0 + lane]
    for s in range(S - S % 8, S):
        lanes[s % 8] += x[s]
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))


@_jit()
def _pack_geometry(means2d, conics, opacities, radii, margin):
    """[G, 8] rows (mean x, mean y, conic a, b, c, opacity, sigma cut, radius y): one cache line
    per Gaussian for the kernels' random access. sigma cut = log(o / ALPHA_MIN) + margin (see
    _SIGMA_MARGIN). means2d [G, 2], conics [G, 3], opacities [G], radii [G, 2]."""
    G = opacities.shape[0]
    out = np.zeros((G, 8), opacities.dtype)
    for g in range(G):
        out[g, 0], out[g, 1] = means2d[g, 0], means2d[g, 1]
        out[g, 2], out[g, 3], out[g, 4] = conics[g, 0], conics[g, 1], conics[g, 2]
        out[g, 5] = opacities[g]
        out[g, 6] = math.log(max(float(opacities[g]), 1e-30) / ALPHA_MIN) + margin
        out[g, 7] = radii[g, 1]
    return out


@_jit()
def _opacity_radii(conics, opacities, radii, margin):
    """Per-axis box half-sizes [G, 2] (float) within gsplat's ``radii`` [G, 2] outside which alpha < ALPHA_MIN.

    alpha >= ALPHA_MIN needs sigma = d^T conic d / 2 <= t = log(o / ALPHA_MIN) (+ the kernels' margin),
    an ellipse whose extent along x is sqrt(2 t cov_xx), cov = conic^-1 (cov_xx = c / det); 0 culls
    (o < ALPHA_MIN: no pixel can reach it). Widened by 0.1 % + 1e-3 px against round-off.
    """
    G = opacities.shape[0]
    out = np.zeros((G, 2), np.float64)
    for g in range(G):
        if radii[g, 0] <= 0 or radii[g, 1] <= 0:
            continue
        t = math.log(max(float(opacities[g]), 1e-30) / ALPHA_MIN) + margin
        a, b, c = float(conics[g, 0]), float(conics[g, 1]), float(conics[g, 2])
        det = a * c - b * b
        if t <= 0.0:
            continue  # culled
        if not det > 0.0:  # not an ellipse (cannot come from the projection): keep gsplat's box
            out[g, 0], out[g, 1] = float(radii[g, 0]), float(radii[g, 1])
            continue
        out[g, 0] = min(float(radii[g, 0]), math.sqrt(2.0 * t * c / det) * 1.001 + 1e-3)
        out[g, 1] = min(float(radii[g, 1]), math.sqrt(2.0 * t * a / det) * 1.001 + 1e-3)
    return out


@_jit(inline='always')
def _pixel_range(my, radius_y, y_lo, tile_size):
    """The tile's pixels [s0, s1) in the rows that the Gaussian's box ``|y + 0.5 - my| <= radius_y``
    touches (the rest have alpha < ALPHA_MIN: the same guarantee that bins it to tiles)."""
    r0 = max(0.0, math.ceil(my - radius_y - 0.5 - y_lo))
    r1 = min(tile_size - 1.0, math.floor(my + radius_y - 0.5 - y_lo))
    if not r0 <= r1:
        return np.uint64(0), np.uint64(0)
    # unsigned, so that numba indexes without its negative-index wraparound, which stops LLVM vectorising
    return np.uint64(int(r0) * tile_size), np.uint64((int(r1) + 1) * tile_size)


@_jit()
def _bin_gaussians(means2d, radii, depths, tile_size, tiles_x, tiles_y):
    """(tile, Gaussian) pairs sorted by tile, then depth (stable), as gsplat's ``isect_tiles``.

    Args:
        means2d [B, N, 2], radii [B, N, 2] (a zero radius culls), depths [B, N].

    Returns:
        tile_start [B * T + 1] int64: the pairs of tile t (flat b * T + ty * tiles_x + tx) are
        tile_start[t]:tile_start[t + 1]; gauss [Q] int32: flat Gaussian (b * N + n) of each pair;
        slot [Q] int64: the pair's row in Gaussian-major order; gauss_start [B * N + 1] int64:
        Gaussian g's rows are gauss_start[g]:gauss_start[g + 1].
    """
    B, N = depths.shape
    T = tiles_x * tiles_y
    rect = np.zeros((B * N, 4), np.int64)  # x0, y0, x1, y1 (inclusive tile range)
    gauss_start = np.zeros(B * N + 1, np.int64)
    tile_start = np.zeros(B * T + 1, np.int64)
    for b in range(B):
        for n in range(N):
            if radii[b, n, 0] <= 0 or radii[b, n, 1] <= 0:
                continue
            # pixel x is touched if |x + 0.5 - mean| <= radius (as _torch_impl._tile_pairs)
            x0 = np.floor((means2d[b, n, 0] - radii[b, n, 0] - 0.5) / tile_size)
            x1 = np.floor((means2d[b, n, 0] + radii[b, n, 0] - 0.5) / tile_size)
            y0 = np.floor((means2d[b, n, 1] - radii[b, n, 1] - 0.5) / tile_size)
            y1 = np.floor((means2d[b, n, 1] + radii[b, n, 1] - 0.5) / tile_size)
            if not (x0 < tiles_x and x1 >= 0 and y0 < tiles_y and y1 >= 0):  # off-screen, or NaN
                continue
            g = b * N + n
            rect[g, 0], rect[g, 1] = int(max(0.0, x0)), int(max(0.0, y0))  # clamped as floats: no int overflow
            rect[g, 2], rect[g, 3] = int(min(tiles_x - 1.0, x1)), int(min(tiles_y - 1.0, y1))
            gauss_start[g + 1] = (rect[g, 2] - rect[g, 0] + 1) * (rect[g, 3] - rect[g, 1] + 1)
            for ty in range(rect[g, 1], rect[g, 3] + 1):
                for tx in range(rect[g, 0], rect[g, 2] + 1):
                    tile_start[b * T + ty * tiles_x + tx + 1] += 1
    gauss_start = np.cumsum(gauss_start)
    tile_start = np.cumsum(tile_start)
    Q = tile_start[-1]
    gauss = np.empty(Q, np.int32)
    slot = np.empty(Q, np.int64)
    cursor = tile_start[:-1].copy()
    for b in range(B):
        for n in np.argsort(depths[b], kind='mergesort'):  # front to back, ties by index (stable)
            g = b * N + n
            j = gauss_start[g]
            if j == gauss_start[g + 1]:
                continue  # culled
            for ty in range(rect[g, 1], rect[g, 3] + 1):
                for tx in range(rect[g, 0], rect[g, 2] + 1):
                    t = b * T + ty * tiles_x + tx
                    gauss[cursor[t]] = g
                    slot[cursor[t]] = j
                    cursor[t] += 1
                    j += 1
    return tile_start, gauss, slot, gauss_start


@_jit(inline='always')
def _tile_pixels(tile, tiles_x, tiles_per_image, tile_size, px, py):
    """Pixel centres of a tile into px, py [S] (row-major in the tile); returns (b, x_lo, y_lo)."""
    b, local = tile // tiles_per_image, tile % tiles_per_image
    x_lo, y_lo = (local % tiles_x) * tile_size, (local // tiles_x) * tile_size
    for s in range(tile_size * tile_size):
        px[s] = x_lo + s % tile_size + 0.5
        py[s] = y_lo + s // tile_size + 0.5
    return b, x_lo, y_lo


@_jit(parallel=True)
def _forward_kernel(geom, colors, tile_start, gauss, width, height, tile_size, tiles_x, n_workers, consts):
    """Composite every tile front to back.

    Args:
        geom [G, 8] from :func:`_pack_geometry`, colors [G, D] (G = B * N, one dtype);
        tile_start, gauss from :func:`_bin_gaussians`; n_workers: tile w goes to worker
        w % n_workers (interleaved: balanced when the work is in one part of the image);
        consts [5]: 0.5, 1, ALPHA_MIN, ALPHA_MAX, T_MIN in the dtype (numba would compute
        ``0.5 * x`` in float64).

    Returns:
        img [B, H, W, D] without background, t_final [B, H, W] transmittance after the last
        contributor, n_used [B, H, W] int32: the pixel used its tile's pairs 0 .. n_used - 1.
    """
    half, one, amin, amax, tmin = consts[0], consts[1], consts[2], consts[3], consts[4]
    zero = one - one
    D = colors.shape[1]
    S = tile_size * tile_size
    n_tiles = tile_start.shape[0] - 1
    tiles_per_image = tiles_x * ((height + tile_size - 1) // tile_size)
    img = np.zeros((n_tiles // tiles_per_image, height, width, D), colors.dtype)
    t_final = np.ones((n_tiles // tiles_per_image, height, width), colors.dtype)
    n_used = np.zeros((n_tiles // tiles_per_image, height, width), np.int32)
    for worker in prange(n_workers):
        px, py = np.empty(S, colors.dtype), np.empty(S, colors.dtype)
        trans, weight = np.empty(S, colors.dtype), np.empty(S, colors.dtype)
        color = np.empty((D, S), colors.dtype)
        used, live = np.empty(S, np.int32), np.empty(S, np.int32)
        for tile in range(worker, n_tiles, n_workers):
            b, x_lo, y_lo = _tile_pixels(tile, tiles_x, tiles_per_image, tile_size, px, py)
            trans[:] = one
            color[:] = zero
            used[:] = 0
            n_live = 0
            for s in range(S):  # padding pixels of an edge tile are never live
                live[s] = 1 if x_lo + s % tile_size < width and y_lo + s // tile_size < height else 0
                n_live += live[s]
            for k in range(tile_start[tile + 1] - tile_start[tile]):
                if n_live == 0:
                    break  # every pixel of the tile is done
                g = gauss[tile_start[tile] + k]
                mx, my, a, bb, c, o, cut = geom[g, 0], geom[g, 1], geom[g, 2], geom[g, 3], geom[g, 4], \
                    geom[g, 5], geom[g, 6]
                s0, s1 = _pixel_range(my, geom[g, 7], y_lo, tile_size)
                # No counters in the loop (numba adds int32s as int64, which halves the vector width)
                any_stop, k1 = False, np.int32(k + 1)
                for s in range(s0, s1):  # branch-free: LLVM vectorises it
                    dx = px[s] - mx
                    dy = py[s] - my
                    sigma = half * (a * dx * dx + c * dy * dy) + bb * dx * dy  # as _torch_impl._alpha
                    alpha = min(amax, o * _exp_neg(sigma))
                    ok = (sigma <= cut) & (alpha >= amin) & (live[s] != 0)
                    next_t = trans[s] * (one - alpha)
                    # gsplat: a Gaussian that would take T to T_MIN or below is not added; the pixel is done
                    stop = ok & (next_t <= tmin)
                    add = ok & (next_t > tmin)
                    weight[s] = alpha * trans[s] if add else zero
                    trans[s] = next_t if add else trans[s]
                    used[s] = k1 if add else used[s]
                    live[s] = 0 if stop else live[s]
                    any_stop |= stop
                for d in range(D):
                    cd = colors[g, d]
                    for s in range(s0, s1):
                        color[d, s] += weight[s] * cd
                if any_stop:
                    n_live = 0
                    for s in range(S):
                        n_live += live[s]
            for s in range(S):
                x, y = x_lo + s % tile_size, y_lo + s // tile_size
                if x < width and y < height:
                    t_final[b, y, x] = trans[s]
                    n_used[b, y, x] = used[s]
                    for d in range(D):
                        img[b, y, x, d] = color[d, s]
    return img, t_final, n_used


@_jit(parallel=True)
def _backward_kernel(geom, colors, tile_start, gauss, slot, t_final, n_used, v_img, v_acc, width, height, tile_size,
                     tiles_x, n_workers, consts):
    """Per-pair gradients, back to front per tile (gsplat's backward).

    Args:
        as :func:`_forward_kernel`, plus slot [Q], t_final and n_used from the forward, and the
        output gradients v_img [B, H, W, D] and v_acc [B, H, W] (acc = 1 - t_final).

    Returns:
        grads [Q, 6 + D]: per pair, in Gaussian-major order (row slot[p]), the gradient summed over
        the tile's pixels w.r.t. mean x, mean y, conic a, b, c, opacity, colour 0 .. D-1.
    """
    half, one, amin, amax = consts[0], consts[1], consts[2], consts[3]
    zero = one - one
    D = colors.shape[1]
    S = tile_size * tile_size
    n_tiles = tile_start.shape[0] - 1
    tiles_per_image = tiles_x * ((height + tile_size - 1) // tile_size)
    grads = np.zeros((gauss.shape[0], 6 + D), colors.dtype)
    for worker in prange(n_workers):
        px, py = np.empty(S, colors.dtype), np.empty(S, colors.dtype)
        trans = np.empty(S, colors.dtype)  # T in front of the current Gaussian, recovered from T_final
        t_last, v_a = np.empty(S, colors.dtype), np.empty(S, colors.dtype)
        used = np.empty(S, np.int32)
        v_c, behind = np.empty((D, S), colors.dtype), np.empty((D, S), colors.dtype)  # behind: colour behind
        # per pixel, for the current Gaussian (zero where it does not contribute)
        ratio, t_ok, fac = np.empty(S, colors.dtype), np.empty(S, colors.dtype), np.empty(S, colors.dtype)
        vis_ok, v_alpha = np.empty(S, colors.dtype), np.empty(S, colors.dtype)
        dxs, dys, term = np.empty(S, colors.dtype), np.empty(S, colors.dtype), np.empty((6, S), colors.dtype)
        lanes = np.empty(8, colors.dtype)
        for tile in range(worker, n_tiles, n_workers):
            b, x_lo, y_lo = _tile_pixels(tile, tiles_x, tiles_per_image, tile_size, px, py)
            n_max = 0
            for s in range(S):
                x, y = x_lo + s % tile_size, y_lo + s // tile_size
                inside = x < width and y < height
                trans[s] = t_last[s] = t_final[b, y, x] if inside else one
                used[s] = n_used[b, y, x] if inside else 0
                v_a[s] = v_acc[b, y, x] if inside else zero
                for d in range(D):
                    v_c[d, s] = v_img[b, y, x, d] if inside else zero
                n_max = max(n_max, used[s])
            behind[:] = zero
            for k in range(n_max - 1, -1, -1):
                g = gauss[tile_start[tile] + k]
                mx, my, a, bb, c, o, cut = geom[g, 0], geom[g, 1], geom[g, 2], geom[g, 3], geom[g, 4], \
                    geom[g, 5], geom[g, 6]
                s0, s1 = _pixel_range(my, geom[g, 7], y_lo, tile_size)
                any_ok, k32 = False, np.int32(k)  # no counters, 32-bit index: see the forward
                for s in range(s0, s1):  # branch-free: LLVM vectorises it
                    dx = px[s] - mx
                    dy = py[s] - my
                    sigma = half * (a * dx * dx + c * dy * dy) + bb * dx * dy  # bit-identical to the forward's
                    vis = _exp_neg(sigma)
                    alpha = min(amax, o * vis)
                    ok = (sigma <= cut) & (alpha >= amin) & (k32 < used[s])
                    ra = one / (one - alpha)
                    t = trans[s] * ra if ok else trans[s]
                    trans[s] = t
                    ratio[s] = ra if ok else zero
                    t_ok[s] = t if ok else zero
                    fac[s] = alpha * t if ok else zero
                    v_alpha[s] = t_last[s] * ra * v_a[s] if ok else zero  # d acc / d alpha = T_final / (1 - alpha)
                    vis_ok[s] = vis if ok & (o * vis <= amax) else zero  # zero: alpha clamped, no gradient
                    dxs[s], dys[s] = dx, dy
                    any_ok |= ok
                if not any_ok:
                    continue  # its row stays zero
                row = slot[tile_start[tile] + k]
                for d in range(D):
                    cd = colors[g, d]
                    for s in range(s0, s1):
                        v_alpha[s] += (cd * t_ok[s] - behind[d, s] * ratio[s]) * v_c[d, s]
                        term[0, s] = fac[s] * v_c[d, s]
                        behind[d, s] += cd * fac[s]
                    grads[row, 6 + d] = _lane_sum(term[0, s0:s1], lanes)
                for s in range(s0, s1):
                    v_sigma = -o * vis_ok[s] * v_alpha[s]
                    dx, dy = dxs[s], dys[s]
                    # dx = px - mean: d sigma / d mean = -(a dx + b dy, b dx + c dy)
                    term[0, s] = -v_sigma * (a * dx + bb * dy)
                    term[1, s] = -v_sigma * (bb * dx + c * dy)
                    term[2, s] = half * v_sigma * dx * dx
                    term[3, s] = v_sigma * dx * dy
                    term[4, s] = half * v_sigma * dy * dy
                    term[5, s] = vis_ok[s] * v_alpha[s]
                for j in range(6):
                    grads[row, j] = _lane_sum(term[j, s0:s1], lanes)
    return grads


@_jit(parallel=True)
def _sum_pairs(grads, gauss_start):
    """[G, 6 + D]: each Gaussian's pair rows of ``grads`` [Q, 6 + D] added in pair order."""
    G = gauss_start.shape[0] - 1
    out = np.zeros((G, grads.shape[1]), grads.dtype)
    for g in prange(G):
        for r in range(gauss_start[g], gauss_start[g + 1]):
            for j in range(grads.shape[1]):
                out[g, j] += grads[r, j]
    return out


def _numpy(x: Tensor) -> np.ndarray:
    """A contiguous CPU numpy view (a copy only when x is not contiguous)."""
    return x.detach().contiguous().numpy()


def _set_threads() -> int:
    """numba uses as many threads as torch (tests and tools set torch's), within its pool's size."""
    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


class _RasterizeFused(torch.autograd.Function):
    """Image [B, H, W, D] and alpha [B, H, W, 1] with gradients for means2d, conics, colors, opacities."""

    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, depths, radii, width, height, tile_size):
        B, N, D = check_2d(means2d, conics, colors, opacities, depths, radii)
        dtype = means2d.dtype
        if dtype not in (torch.float32, torch.float64) or any(x.dtype != dtype for x in (conics, colors, opacities)):
            raise TypeError(f'rasterize_fused: means2d, conics, colors, opacities must share float32 or float64, '
                            f'got {[x.dtype for x in (means2d, conics, colors, opacities)]}')
        if any(x.device.type != 'cpu' for x in (means2d, conics, colors, opacities, depths, radii)):
            raise ValueError('rasterize_fused runs on CPU tensors only (use the gsplat backend on CUDA)')
        n_workers = _set_threads()
        tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
        np_means2d, np_colors = _numpy(means2d), _numpy(colors).reshape(B * N, D)
        consts = np.array([0.5, 1.0, ALPHA_MIN, ALPHA_MAX, T_MIN], dtype=np_colors.dtype)
        np_conics, np_opacities = _numpy(conics).reshape(B * N, 3), _numpy(opacities).reshape(B * N)
        np_radii = _opacity_radii(np_conics, np_opacities, _numpy(radii).reshape(B * N, 2),
                                  _SIGMA_MARGIN).reshape(B, N, 2)
        geom = _pack_geometry(np_means2d.reshape(B * N, 2), np_conics, np_opacities, np_radii.reshape(B * N, 2),
                              _SIGMA_MARGIN)
        bins = _bin_gaussians(np_means2d, np_radii, _numpy(depths), tile_size, tiles_x, tiles_y)
        img, t_final, n_used = _forward_kernel(geom, np_colors, bins[0], bins[1], width, height, tile_size, tiles_x,
                                               n_workers, consts)
        ctx.save_for_backward(means2d, conics, colors, opacities)  # only to detect in-place changes
        ctx.state = (geom, np_colors, bins, t_final, n_used, consts, width, height, tile_size, tiles_x, N)
        return torch.from_numpy(img), torch.from_numpy(1.0 - t_final[..., None])

    @staticmethod
    @once_differentiable
    def backward(ctx, v_img, v_acc):
        ctx.saved_tensors  # noqa: B018  raises if an input was modified in place since the forward
        geom, colors, (tile_start, gauss, slot, gauss_start), t_final, n_used, consts, width, height, tile_size, \
            tiles_x, N = ctx.state
        B, D, dtype = t_final.shape[0], colors.shape[1], torch.from_numpy(colors).dtype
        n_workers = _set_threads()
        v_img = np.zeros((B, height, width, D), colors.dtype) if v_img is None else _numpy(v_img.to(dtype))
        v_acc = np.zeros((B, height, width), colors.dtype) if v_acc is None \
            else _numpy(v_acc.to(dtype)).reshape(B, height, width)
        pairs = _backward_kernel(geom, colors, tile_start, gauss, slot, t_final, n_used, v_img, v_acc, width, height,
                                 tile_size, tiles_x, n_workers, consts)
        grads = torch.from_numpy(_sum_pairs(pairs, gauss_start)).reshape(B, N, 6 + D)
        return tuple(x.contiguous() for x in (grads[..., 0:2], grads[..., 2:5], grads[..., 6:], grads[..., 5])) \
            + (None, ) * 5


def rasterize_fused(means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor, depths: Tensor,
                    radii: Tensor, width: int, height: int, background: Optional[Tensor] = None,
                    tile_size: int = TILE_SIZE) -> Tuple[Tensor, Tensor]:
    """Fused CPU rasteriser: same arguments and result as :func:`~._torch_impl.rasterize_dense`.

    Args:
        means2d [B, N, 2], conics [B, N, 3], colors [B, N, D], opacities [B, N] (one dtype, float32
        or float64, CPU), depths [B, N], radii [B, N, 2] (0 = culled), background [B, D] or None.
        tile_size: speed only; the image is the same for every tile size.

    Returns:
        image [B, H, W, D], accumulated alpha [B, H, W, 1] (``1 - T_final``, as gsplat).
    """
    img, acc = _RasterizeFused.apply(means2d, conics, colors, opacities, depths, radii, width, height, tile_size)
    return add_background(img, acc, background), acc
