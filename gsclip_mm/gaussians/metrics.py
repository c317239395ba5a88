"""Image quality of a render against its target: PSNR and SSIM (images [B, H, W, 3] in [0, 1])."""
import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(img: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB per image, [B]; images [B, H, W, C] with peak 1."""
    assert img.shape == target.shape and img.dim() == 4, (img.shape, target.shape)
    mse = ((img - target) ** 2).flatten(1).mean(1)
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


def _gauss_window(size: int, sigma: float, dtype, device) -> Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()  # [size]


def ssim_map(img: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5,
             data_range: float = 1.0) -> Tensor:
    """SSIM map [B, C, H', W'] (valid convolution with a Gaussian window, as in 3DGS / Wang et al.)."""
    assert img.shape == target.shape and img.dim() == 4, (img.shape, target.shape)
    x, y = img.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)  # [B, C, H, W]
    C = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2])
    g = _gauss_window(window, sigma, x.dtype, x.device)
    kx = g.view(1, 1, 1, -1).expand(C, 1, 1, window)
    ky = g.view(1, 1, -1, 1).expand(C, 1, window, 1)
    blur = lambda t: F.conv2d(F.conv2d(t, kx, groups=C), ky, groups=C)  # noqa: E731 separable filter
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x * mu_x
    syy = blur(y * y) - mu_y * mu_y
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2))


def ssim(img: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM per image, [B]."""
    return ssim_map(img, target, window, sigma).flatten(1).mean(1)
