"""The 3DGS photometric loss: ``(1 - lambda) * L1 + lambda * (1 - SSIM)``, per image."""
from torch import Tensor

from .metrics import ssim


def photometric_loss(img: Tensor, target: Tensor, lambda_dssim: float = 0.2) -> Tensor:
    """Loss per image, [B]; img and target [B, H, W, C] in [0, 1]."""
    assert img.shape == target.shape and img.dim() == 4, (img.shape, target.shape)
    l1 = (img - target).abs().flatten(1).mean(1)
    if lambda_dssim == 0:
        return l1
    return (1.0 - lambda_dssim) * l1 + lambda_dssim * (1.0 - ssim(img, target))
