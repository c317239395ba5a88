"""The front of the differentiable 3DGS rasterisers (as gsplat's ``rendering.py``): :func:`rasterize`.

Layout: ``_constants.py`` (the compositing rules and the shared input check),
``_torch_impl.py`` (the PyTorch-ops references, dense and tiles), ``rasterize_fused.py``
(the compiled CPU kernels); this module projects and dispatches.

* ``'gsplat'``: gsplat's CUDA ``rasterization`` (CUDA tensors only).
* ``'fused'``: the CPU default, :func:`~.rasterize_fused.rasterize_fused`:
  gsplat's tile algorithm (bin to tiles, sort by depth, composite front to
  back per pixel; backward from the back with the saved final transmittance)
  as compiled numba loops, parallel over tiles, in a ``torch.autograd.Function``.
* ``'tiles'``: our PyTorch-ops CPU rasteriser, :func:`~._torch_impl.rasterize_tiles`. gsplat has no
  CPU rasteriser (its "pure PyTorch" ``_rasterize_to_pixels`` still calls a CUDA
  kernel to find the pixel/Gaussian pairs), so we write one: each Gaussian is
  evaluated only on the pixels of the screen tiles its 3-sigma box touches,
  all pairs at once (packed, no padding), with autograd for the backward.
* ``'dense'``: :func:`~._torch_impl.rasterize_dense`, the small, obvious reference (every
  Gaussian against every pixel) that the tests compare the others with.

All share gsplat's pure-PyTorch projection (:func:`project_gaussians`) and its
compositing rules: ``alpha = min(0.999, o * exp(-sigma))``, pairs with
``alpha < 1/255`` skipped (gsplat also skips ``sigma < 0``, which cannot occur:
the conic of ``cov2d + eps2d * I`` is positive definite), front-to-back by depth, a pixel
stops once its transmittance would fall to ``1e-4`` or below.
"""
from typing import Optional, Tuple

from torch import Tensor

from ._torch_impl import rasterize_dense, rasterize_tiles

__all__ = ['project_gaussians', 'rasterize', 'rasterize_dense', 'rasterize_tiles']


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
