"""PointNet++ set abstraction (SSG and MSG) in channels-last layout.

Features are kept as ``[B, M, K, C]`` inside the modules so that every shared
MLP is one matrix multiply (``nn.Linear``) over all grouped points, the
fastest layout on the CPU; the backbone transposes to the channels-first
``[B, C, M]`` of mmdetection3d's ``sa_features`` only at its output.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..ops import ball_query, furthest_point_sample, gather_points


class SharedMLP(nn.Module):
    """PointNet's shared MLP: ``Linear -> BatchNorm -> ReLU`` per layer, on the last axis.

    Args:
        in_channels (int): input width.
        channels (Sequence[int]): output width of each layer.
    """

    def __init__(self, in_channels: int, channels: Sequence[int]):
        super().__init__()
        if len(channels) == 0:
            raise ValueError('SharedMLP needs at least one layer width')
        layers = []
        for c in channels:
            layers += [nn.Linear(in_channels, c, bias=False), nn.BatchNorm1d(c), nn.ReLU(inplace=True)]
            in_channels = c
        self.layers = nn.ModuleList(layers)
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., C_in] -> [..., C_out]``; BatchNorm statistics over all leading axes."""
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])  # [P, C_in]
        for layer in self.layers:
            x = layer(x)
        return x.view(*lead, self.out_channels)


def group_points(xyz: torch.Tensor, features: Optional[torch.Tensor], center_xyz: torch.Tensor,
                 idx: torch.Tensor) -> torch.Tensor:
    """Neighbour offsets from their centre, concatenated with their features.

    Args:
        xyz (Tensor): ``[B, N, 3]`` positions.
        features (Tensor | None): ``[B, N, C]`` per-point features.
        center_xyz (Tensor): ``[B, M, 3]`` centres.
        idx (Tensor): ``[B, M, K]`` neighbour indices into N.

    Returns:
        Tensor: ``[B, M, K, 3 + C]``.
    """
    grouped = gather_points(xyz, idx) - center_xyz.unsqueeze(2)  # [B, M, K, 3]
    if features is not None:
        grouped = torch.cat([grouped, gather_points(features, idx)], dim=-1)  # [B, M, K, 3 + C]
    return grouped


class PointSAModule(nn.Module):
    """One set-abstraction level, single- or multi-scale grouping.

    FPS picks ``num_point`` centres; per scale, a ball query of ``radii[s]``
    gathers ``num_samples[s]`` neighbours, a shared MLP maps
    ``(offset, features)`` and a max over the neighbours pools them; the scales
    are concatenated. With ``num_point=None`` the level groups all points
    around the origin (PointNet++'s last level).

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

    def forward(self, xyz: torch.Tensor, features: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Abstract one level.

        Args:
            xyz (Tensor): ``[B, N, 3]`` positions.
            features (Tensor | None): ``[B, N, C]`` features.

        Returns:
            tuple: centres ``[B, M, 3]`` (zeros ``[B, 1, 3]`` when grouping
            all) and their features ``[B, M, C_out]``.
        """
        if self.num_point is None:
            center = xyz.new_zeros(xyz.shape[0], 1, 3)  # [B, 1, 3]
            grouped = xyz if features is None else torch.cat([xyz, features], dim=-1)  # [B, N, 3 + C]
            return center, self.mlps[0](grouped.unsqueeze(1)).max(dim=2).values  # [B, 1, C_out]
        fps_idx = furthest_point_sample(xyz.detach(), self.num_point)  # [B, M]
        center = gather_points(xyz, fps_idx)  # [B, M, 3]
        outs: List[torch.Tensor] = []
        for radius, k, mlp in zip(self.radii, self.num_samples, self.mlps):
            idx = ball_query(0., radius, k, xyz.detach(), center.detach())  # [B, M, K]
            outs.append(mlp(group_points(xyz, features, center, idx)).max(dim=2).values)  # [B, M, C_s]
        return center, torch.cat(outs, dim=-1)  # [B, M, C_out]


def build_sa_modules(in_channels: int, num_points: Sequence[Optional[int]], radii: Sequence,
                     num_samples: Sequence, mlp_channels: Sequence) -> nn.ModuleList:
    """Set-abstraction levels from per-level lists.

    A level is multi-scale (MSG) when its radius is a list: then its
    ``num_samples`` entry is a list of the same length and its
    ``mlp_channels`` entry a list of width lists. A level with
    ``num_point=None`` groups all points (its radius and sample entries are
    ignored; give None).
    """
    if not len(num_points) == len(radii) == len(num_samples) == len(mlp_channels) >= 1:
        raise ValueError('sa_cfg lists must have one entry per level and the same length, got '
                         f'num_points={num_points}, radii={radii}, num_samples={num_samples}, '
                         f'mlp_channels={mlp_channels}')
    levels = nn.ModuleList()
    for n, r, k, ch in zip(num_points, radii, num_samples, mlp_channels):
        msg = isinstance(r, (list, tuple))
        level = PointSAModule(in_channels, n, list(r) if msg else [r], list(k) if msg else [k],
                              list(ch) if msg else [ch])
        levels.append(level)
        in_channels = level.out_channels
    return levels
