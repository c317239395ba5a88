"""The compositing rules every rasteriser shares (as gsplat's ``cuda/_constants.py``), and their input check.

gsplat's rules: ``alpha = min(ALPHA_MAX, o * exp(-sigma))``; a pair with
``alpha < ALPHA_MIN`` is skipped; a pixel stops once its transmittance would
fall to ``T_MIN`` or below.
"""
from typing import Optional, Tuple

from torch import Tensor

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4


def check_2d(means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor, depths: Tensor,
             radii: Tensor) -> Tuple[int, int, int]:
    """Shapes of the projected inputs every rasteriser takes; returns (B, N, D)."""
    B, N = means2d.shape[:2]
    D = colors.shape[-1]
    assert means2d.shape == (B, N, 2), means2d.shape
    assert conics.shape == (B, N, 3), conics.shape
    assert colors.shape == (B, N, D), colors.shape
    assert opacities.shape == (B, N), opacities.shape
    assert depths.shape == (B, N), depths.shape
    assert radii.shape == (B, N, 2), radii.shape
    return B, N, D


def add_background(img: Tensor, acc: Tensor, background: Optional[Tensor]) -> Tensor:
    """img [B, H, W, D] + (1 - acc [B, H, W, 1]) * background [B, D]."""
    if background is None:
        return img
    return img + (1.0 - acc) * background[:, None, None, :]
