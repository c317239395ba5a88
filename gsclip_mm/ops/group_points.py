"""Gathering point features by index (the grouping step of PointNet++)."""
from typing import Optional

import torch

from ._mmcv import use_mmcv


def gather_points(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Channels-last gather: ``out[b, ...] = points[b, idx[b, ...]]``.

    Differentiable in ``points`` (``index_select``'s backward scatters the
    gradients back, summing over repeated indices).

    Args:
        points (Tensor): ``[B, N, C]`` per-point values.
        idx (Tensor): ``[B, *S]`` integer indices into N.

    Returns:
        Tensor: ``[B, *S, C]``.
    """
    assert points.dim() == 3, f'points must be [B, N, C], got {tuple(points.shape)}'
    assert idx.dim() >= 2 and idx.shape[0] == points.shape[0], \
        f'idx must be [B={points.shape[0]}, ...], got {tuple(idx.shape)}'
    B, N, C = points.shape
    offset = torch.arange(B, device=idx.device).view(-1, *([1] * (idx.dim() - 1))) * N  # [B, 1, ...]
    flat = (idx.long() + offset).reshape(-1)  # [B * prod(S)]
    return points.reshape(B * N, C).index_select(0, flat).view(*idx.shape, C)


def group_points(xyz: torch.Tensor, features: Optional[torch.Tensor], center_xyz: torch.Tensor,
                 idx: torch.Tensor) -> torch.Tensor:
    """Neighbour offsets from their centre, concatenated with their features.

    The channels-last counterpart of mmcv's ``QueryAndGroup(use_xyz=True)``
    after the query: the input of a PointNet++ level's shared MLP.

    Args:
        xyz (Tensor): ``[B, N, 3]`` positions.
        features (Tensor | None): ``[B, N, C]`` per-point features.
        center_xyz (Tensor): ``[B, M, 3]`` centres.
        idx (Tensor): ``[B, M, K]`` neighbour indices into N.

    Returns:
        Tensor: ``[B, M, K, 3 + C]`` (``[B, M, K, 3]`` without features),
        differentiable in ``xyz``, ``features`` and ``center_xyz``.
    """
    grouped = gather_points(xyz, idx) - center_xyz.unsqueeze(2)  # [B, M, K, 3]
    if features is not None:
        grouped = torch.cat([grouped, gather_points(features, idx)], dim=-1)  # [B, M, K, 3 + C]
    return grouped


def grouping_operation(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """mmcv's ``grouping_operation``: ``out[b, c, m, k] = features[b, c, idx[b, m, k]]``.

    Uses mmcv's kernel (with its backward) on CUDA float32 tensors when
    present, else :func:`gather_points`.

    Args:
        features (Tensor): ``[B, C, N]`` channels-first features.
        idx (Tensor): ``[B, M, K]`` integer indices into N.

    Returns:
        Tensor: ``[B, C, M, K]``, differentiable in ``features``.
    """
    assert features.dim() == 3, f'features must be [B, C, N], got {tuple(features.shape)}'
    assert idx.dim() == 3 and idx.shape[0] == features.shape[0], \
        f'idx must be [B={features.shape[0]}, M, K], got {tuple(idx.shape)}'
    ops = use_mmcv(features)
    if ops is not None:
        return ops.grouping_operation(features.contiguous(), idx.int().contiguous())
    return gather_points(features.transpose(1, 2), idx).permute(0, 3, 1, 2)  # [B, C, M, K]


def _grouping_operation_reference(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Slow, obvious grouping: stack one gathered column per (b, m, k)."""
    B, C, _ = features.shape
    _, M, K = idx.shape
    cols = [features[b, :, int(idx[b, m, k])] for b in range(B) for m in range(M) for k in range(K)]
    return torch.stack(cols, dim=-1).view(C, B, M, K).permute(1, 0, 2, 3)
