"""PointNet++ feature propagation (mmdetection3d's ``PointFPModule``), pure PyTorch.

A feature-propagation (FP) level carries the features of a sparse point set
(``source``, a set-abstraction level's centres) back to a denser one
(``target``, the level before it): each target point takes the
inverse-distance weighted mean of its three nearest source points' features
(mmcv's ``three_nn`` + ``three_interpolate``), concatenated with its own
skip features, through a shared MLP. The interface is mmdetection3d's
(channels-first ``[B, C, n]`` features); the MLP runs channels-last inside.
"""
from typing import Optional, Sequence

import torch
from torch import nn

from gsclip_mm.ops import gather_points, knn
from ..shared_mlp import SharedMLP


def three_interpolate_nearest(target: torch.Tensor, source: torch.Tensor, source_feats: torch.Tensor,
                              k: int = 3) -> torch.Tensor:
    """Inverse-distance weighted mean of each target point's ``k`` nearest source features.

    mmcv's ``three_nn`` + ``three_interpolate`` as mmdetection3d's
    ``PointFPModule`` uses them: Euclidean distances ``d`` to the nearest
    sources, weights ``(1 / (d + 1e-8))`` normalised to sum 1. With fewer
    than ``k`` source points all of them are used (one source point: its
    feature everywhere, mmdetection3d's ``source=None`` case). The weights
    are not differentiable (as mmcv's ``three_nn``); the result is, in
    ``source_feats``.

    Args:
        target (Tensor): ``[B, n, 3]`` positions to interpolate at.
        source (Tensor): ``[B, m, 3]`` positions of the known features.
        source_feats (Tensor): ``[B, C, m]`` channels-first features.
        k (int): neighbours (3 in PointNet++).

    Returns:
        Tensor: ``[B, C, n]``.
    """
    assert target.dim() == 3 and target.shape[-1] == 3, f'target must be [B, n, 3], got {tuple(target.shape)}'
    assert source.dim() == 3 and source.shape[-1] == 3 and source.shape[0] == target.shape[0], \
        f'source must be [B={target.shape[0]}, m, 3], got {tuple(source.shape)}'
    assert source_feats.dim() == 3 and source_feats.shape[0] == source.shape[0] and \
        source_feats.shape[2] == source.shape[1], \
        f'source_feats must be [B, C, m={source.shape[1]}], got {tuple(source_feats.shape)}'
    k = min(k, source.shape[1])
    with torch.no_grad():
        idx = knn(k, source.detach(), target.detach())  # [B, n, k]
        dist = (gather_points(source.detach(), idx) - target.detach().unsqueeze(2)).square().sum(-1).sqrt()  # [B, n, k]
        weight = 1.0 / (dist + 1e-8)
        weight = weight / weight.sum(dim=-1, keepdim=True)  # [B, n, k]
    neighbours = gather_points(source_feats.transpose(1, 2), idx)  # [B, n, k, C]
    return (neighbours * weight.unsqueeze(-1)).sum(dim=2).transpose(1, 2)  # [B, C, n]


def _three_interpolate_reference(target: torch.Tensor, source: torch.Tensor, source_feats: torch.Tensor,
                                 k: int = 3) -> torch.Tensor:
    """Slow, obvious interpolation: one target point at a time, sources sorted by distance (then index)."""
    out = torch.empty(source_feats.shape[0], source_feats.shape[1], target.shape[1], dtype=source_feats.dtype)
    for b in range(target.shape[0]):
        for i in range(target.shape[1]):
            d = [float((source[b, j] - target[b, i]).norm()) for j in range(source.shape[1])]
            near = sorted(range(len(d)), key=lambda j: (d[j], j))[:min(k, len(d))]
            w = torch.tensor([1.0 / (d[j] + 1e-8) for j in near], dtype=source_feats.dtype)
            out[b, :, i] = (source_feats[b][:, near] * (w / w.sum())).sum(dim=1)
    return out


class PointFPModule(nn.Module):
    """One feature-propagation level, as mmdetection3d's ``PointFPModule``.

    Args:
        mlp_channels (Sequence[int]): ``[C_in, C_1, ..., C_out]``, with
            ``C_in`` = source feature width + target (skip) feature width,
            as mmdetection3d's ``mlp_channels``. Each layer is
            ``Linear(no bias) -> BatchNorm -> ReLU`` (mmdetection3d's
            ``ConvModule`` 1x1 with BN2d, bias off under a norm).
    """

    def __init__(self, mlp_channels: Sequence[int]):
        super().__init__()
        if len(mlp_channels) < 2:
            raise ValueError(f'mlp_channels must list the input width and at least one layer, got {mlp_channels}')
        self.in_channels = int(mlp_channels[0])
        self.mlp = SharedMLP(self.in_channels, [int(c) for c in mlp_channels[1:]])
        self.out_channels = self.mlp.out_channels

    def forward(self, target: torch.Tensor, source: Optional[torch.Tensor], target_feats: Optional[torch.Tensor],
                source_feats: torch.Tensor) -> torch.Tensor:
        """Propagate ``source_feats`` to ``target``.

        Args:
            target (Tensor): ``[B, n, 3]`` positions of the target points.
            source (Tensor | None): ``[B, m, 3]`` positions of the source
                points; None: ``source_feats`` is one global feature
                ``[B, C2, 1]``, given to every target point.
            target_feats (Tensor | None): ``[B, C1, n]`` skip features.
            source_feats (Tensor): ``[B, C2, m]`` features to propagate.

        Returns:
            Tensor: ``[B, C_out, n]`` (mmdetection3d's ``[B, M, N]``, M = mlp_channels[-1]).
        """
        if source is not None:
            interpolated = three_interpolate_nearest(target, source, source_feats)  # [B, C2, n]
        else:
            interpolated = source_feats.expand(*source_feats.shape[:2], target.shape[1])  # [B, C2, n]
        feats = interpolated if target_feats is None else torch.cat([interpolated, target_feats], dim=1)
        if feats.shape[1] != self.in_channels:
            raise ValueError(f'PointFPModule expects {self.in_channels} input channels (source + target), got '
                             f'{feats.shape[1]} = {interpolated.shape[1]} + '
                             f'{0 if target_feats is None else target_feats.shape[1]}')
        return self.mlp(feats.transpose(1, 2)).transpose(1, 2)  # [B, C_out, n]
