"""PointNet++ set abstraction (SSG and MSG) in channels-last layout.

Features are kept as ``[B, M, K, C]`` inside the module so that every shared
MLP is one matrix multiply over all grouped points; the backbone transposes
to the channels-first ``[B, C, M]`` of mmdetection3d's ``sa_features`` only
at its output.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from gsclip_mm.ops import ball_query, furthest_point_sample, gather_points, group_points
from ..shared_mlp import SharedMLP


class PointSAModule(nn.Module):
    """One set-abstraction level, single- or multi-scale grouping.

    FPS picks ``num_point`` centres; per scale, a ball query of ``radii[s]``
    gathers ``num_samples[s]`` neighbours, a shared MLP maps
    ``(offset, features)`` and a max over the neighbours pools them; the scales
    are concatenated. With ``num_point=None`` the level groups all points
    around the origin (PointNet++'s last level). One class covers
    mmdetection3d's ``PointSAModule`` (one scale) and ``PointSAModuleMSG``.

    Args:
        in_channels (int): per-point feature width C (0 for positions only).
        num_point (int | None): number of centres M, or None to group all.
        radii (Sequence[float]): ball radius per scale (ignored when grouping all).
        num_samples (Sequence[int]): neighbours per scale.
        mlp_channels (Sequence[Sequence[int]]): MLP widths per scale.
    """

    def __init__(self, in_channels: int, num_point: Optional[int], radii: Sequence[float],
                 num_samples: Sequence[int], mlp_channels: Sequence[Sequence[int]]):
        super().__init__()
        if num_point is not None and not (len(radii) == len(num_samples) == len(mlp_channels) >= 1):
            raise ValueError('radii, num_samples and mlp_channels need one entry per scale, got '
                             f'{list(radii)}, {list(num_samples)}, {[list(m) for m in mlp_channels]}')
        if num_point is None and len(mlp_channels) != 1:
            raise ValueError(f'a group-all level has one scale, got mlp_channels={mlp_channels}')
        self.num_point = num_point
        self.radii = [] if num_point is None else [float(r) for r in radii]
        self.num_samples = [] if num_point is None else [int(k) for k in num_samples]
        self.mlps = nn.ModuleList(SharedMLP(in_channels + 3, list(ch)) for ch in mlp_channels)
        self.out_channels = sum(m.out_channels for m in self.mlps)

    def forward(self, xyz: torch.Tensor, features: Optional[torch.Tensor],
                return_indices: bool = False) -> Tuple[Optional[torch.Tensor], ...]:
        """Abstract one level.

        Args:
            xyz (Tensor): ``[B, N, 3]`` positions.
            features (Tensor | None): ``[B, N, C]`` features.
            return_indices (bool): also return the centres' indices into N
                (mmdetection3d's SA modules return them as a third element).

        Returns:
            tuple: centres ``[B, M, 3]`` (zeros ``[B, 1, 3]`` when grouping
            all) and their features ``[B, M, C_out]``; with
            ``return_indices``, then the centres' int64 indices ``[B, M]``
            into N, or None for a group-all level (its centre is the origin,
            no input point).
        """
        if self.num_point is None:
            center = xyz.new_zeros(xyz.shape[0], 1, 3)  # [B, 1, 3]
            grouped = xyz if features is None else torch.cat([xyz, features], dim=-1)  # [B, N, 3 + C]
            pooled = self.mlps[0](grouped.unsqueeze(1)).max(dim=2).values  # [B, 1, C_out]
            return (center, pooled, None) if return_indices else (center, pooled)
        fps_idx = furthest_point_sample(xyz.detach(), self.num_point)  # [B, M]
        center = gather_points(xyz, fps_idx)  # [B, M, 3]
        outs: List[torch.Tensor] = []
        for radius, k, mlp in zip(self.radii, self.num_samples, self.mlps):
            idx = ball_query(0., radius, k, xyz.detach(), center.detach())  # [B, M, K]
            outs.append(mlp(group_points(xyz, features, center, idx)).max(dim=2).values)  # [B, M, C_s]
        feats = torch.cat(outs, dim=-1)  # [B, M, C_out]
        return (center, feats, fps_idx) if return_indices else (center, feats)
