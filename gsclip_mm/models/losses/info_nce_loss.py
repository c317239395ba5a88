"""CLIP's InfoNCE (paper eq. 8-9), with same-group pairs kept out of the negatives."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from gsclip_mm.registry import MODELS


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor,
             groups: Optional[torch.Tensor] = None, symmetric: bool = True) -> torch.Tensor:
    """InfoNCE between paired rows of ``a`` and ``b``.

    Args:
        a: ``[B, D]`` L2-normalised (the 3D embeddings).
        b: ``[B, D]`` L2-normalised (text or image embeddings), ``b[i]`` pairs ``a[i]``.
        logit_scale: scalar, the inverse temperature (already exponentiated,
            as ``open_clip.loss.ClipLoss`` takes it).
        groups: ``[B]`` int, optional. Rows ``i != j`` with the same group id are
            *not negatives of each other*: their logits are masked out (set to
            -inf) in both directions, so a batch with two chairs does not push a
            chair away from the other chair's text. With identical text
            embeddings per class this equals a softmax over the batch's unique
            classes in the 3D->text direction. (Ours: the paper does not say.)
        symmetric: average the a->b and b->a cross-entropies (CLIP), else a->b only.

    Returns:
        Scalar loss. With ``groups=None`` and ``symmetric=True`` it is
        ``open_clip.loss.ClipLoss()(a, b, logit_scale)``.
    """
    assert a.ndim == 2 and a.shape == b.shape, f'a {tuple(a.shape)} and b {tuple(b.shape)} must both be [B, D]'
    logits = logit_scale * a @ b.t()  # [B, B]; row i: a_i against every b_j
    if groups is not None:
        assert groups.shape == (a.shape[0], ), f'groups must be [B], got {tuple(groups.shape)}'
        same = groups[:, None] == groups[None, :]  # [B, B], symmetric: one mask for both directions
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float('-inf'))
    target = torch.arange(a.shape[0], device=a.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.t(), target))
    return loss


@MODELS.register_module()
class InfoNCELoss(nn.Module):
    """CLIP's contrastive loss between 3D embeddings and their text / image embeddings.

    ``forward(a [B, D], b [B, D], logit_scale, groups [B] | None) -> scalar``
    (see :func:`info_nce`). Parameter-free: the learnable temperature belongs
    to the head, which passes ``logit_scale`` in.

    Args:
        symmetric (bool): average both directions (CLIP, paper eq. 8-9) or a->b only.
        mask_same_group (bool): drop pairs of the same group (same class for
            text, same crop for images) from each other's negatives (ours);
            False gives CLIP's plain InfoNCE, ``open_clip.loss.ClipLoss``.
    """

    def __init__(self, symmetric: bool = True, mask_same_group: bool = True) -> None:
        super().__init__()
        self.symmetric = bool(symmetric)
        self.mask_same_group = bool(mask_same_group)

    def forward(self, a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor,
                groups: Optional[torch.Tensor] = None) -> torch.Tensor:
        return info_nce(a, b, logit_scale, groups if self.mask_same_group else None, self.symmetric)

    def extra_repr(self) -> str:
        return f'symmetric={self.symmetric}, mask_same_group={self.mask_same_group}'
