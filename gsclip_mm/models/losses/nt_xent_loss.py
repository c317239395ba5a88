"""SimCLR's NT-Xent (normalized temperature-scaled cross entropy), as CLIP2Point uses it.

CLIP2Point (authors' code, ``models/clip2point.py``) applies one and the same
NT-Xent (``lightly``'s ``NTXentLoss``, temperature 0.07, no memory bank) to
both of its terms: intra-modality (two depth renders of an object) and
cross-modality (CLIP image feature vs the averaged depth feature).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from gsclip_mm.registry import MODELS


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """NT-Xent between two views of a batch.

    Args:
        a: ``[B, D]`` features of view 1 (any norm: normalised here).
        b: ``[B, D]`` features of view 2; ``b[i]`` is the positive of ``a[i]``.
        temperature: the softmax temperature ``t``.

    Returns:
        Scalar: the mean over all ``2B`` rows of ``z = [a; b]`` of
        ``-log(exp(z_i.z_p(i) / t) / sum_{k != i} exp(z_i.z_k / t))``, where
        ``p(i)`` is the other view of the same sample: each row's negatives are
        the other ``2B - 2`` samples of both views (symmetric in ``a``, ``b``).
    """
    assert a.ndim == 2 and a.shape == b.shape, f'a {tuple(a.shape)} and b {tuple(b.shape)} must both be [B, D]'
    assert temperature > 0, f'temperature must be > 0, got {temperature}'
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b]).float(), dim=-1)  # [2B, D]
    logits = z @ z.t() / temperature  # [2B, 2B]
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float('-inf'))  # a row is never its own negative
    idx = torch.arange(n, device=z.device)
    target = torch.cat([idx + n, idx])  # [2B]: row i of a pairs row i of b, and back
    return F.cross_entropy(logits, target)


@MODELS.register_module()
class NTXentLoss(nn.Module):
    """``forward(a [B, D], b [B, D]) -> scalar`` NT-Xent (see :func:`nt_xent`).

    Args:
        temperature (float): CLIP2Point: 0.07 (authors' code); SimCLR: 0.5.
    """

    def __init__(self, temperature: float = 0.07):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.temperature = float(temperature)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return nt_xent(a, b, self.temperature)

    def extra_repr(self) -> str:
        return f'temperature={self.temperature}'
