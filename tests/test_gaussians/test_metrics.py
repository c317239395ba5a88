import math

import torch

from gsclip_mm.gaussians import photometric_loss, psnr, ssim


def test_psnr_hand_computed():
    a = torch.zeros(2, 4, 4, 3)
    b = a.clone()
    b[0] += 0.1  # mse 0.01 -> 20 dB
    b[1, 0, 0, 0] = 1.0  # mse 1 / 48
    torch.testing.assert_close(psnr(a, b), torch.tensor([20.0, 10 * math.log10(48)]))


def test_ssim_identity_and_constant_shift():
    x = torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ssim(x, x), torch.tensor([1.0]))
    # constant images a, b: SSIM = (2ab + c1) / (a^2 + b^2 + c1)
    a, b, c1 = 0.2, 0.6, 0.01 ** 2
    got = ssim(torch.full((1, 16, 16, 3), a), torch.full((1, 16, 16, 3), b))
    torch.testing.assert_close(got, torch.tensor([(2 * a * b + c1) / (a * a + b * b + c1)]))


def test_photometric_loss_weights():
    a, b = torch.full((1, 12, 12, 3), 0.2), torch.full((1, 12, 12, 3), 0.6)
    s = (2 * 0.2 * 0.6 + 1e-4) / (0.04 + 0.36 + 1e-4)
    torch.testing.assert_close(photometric_loss(a, b, 0.2), torch.tensor([0.8 * 0.4 + 0.2 * (1 - s)]))
    torch.testing.assert_close(photometric_loss(a, b, 0.0), torch.tensor([0.4]))
