"""Squared Euclidean distances between two batched point sets."""
from typing import Iterator, Tuple

import torch

# Centres per block in ball query / kNN are chosen so that a [B, m, N] block
# holds about this many elements (16 MiB of float32): big temporaries cost a
# fresh mmap and page faults on every call, small ones are reused by malloc.
BLOCK_ELEMENTS = 1 << 22


def square_distance(query: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Squared distances from every query point to every point.

    Computed coordinate by coordinate from differences, as mmcv's CUDA kernels
    do, rather than with ``|a|^2 + |b|^2 - 2ab``: the expansion loses digits
    near zero and flips points lying close to a ball's radius.

    Args:
        query (Tensor): ``[B, M, 3]`` query positions.
        points (Tensor): ``[B, N, 3]`` positions.

    Returns:
        Tensor: ``[B, M, N]`` squared distances.
    """
    assert query.dim() == 3 and query.shape[-1] == 3, f'query must be [B, M, 3], got {tuple(query.shape)}'
    assert points.dim() == 3 and points.shape[-1] == 3, f'points must be [B, N, 3], got {tuple(points.shape)}'
    assert query.shape[0] == points.shape[0], \
        f'batch sizes differ: query {tuple(query.shape)}, points {tuple(points.shape)}'
    q = query.transpose(1, 2).contiguous().unsqueeze(-1)  # [B, 3, M, 1], planar: fast broadcasting
    p = points.transpose(1, 2).contiguous().unsqueeze(-2)  # [B, 3, 1, N]
    d2 = torch.sub(q[:, 0], p[:, 0]).square_()  # [B, M, N]
    tmp = torch.empty_like(d2)
    for c in (1, 2):
        d2 += torch.sub(q[:, c], p[:, c], out=tmp).square_()
    return d2


def centre_blocks(num_batch: int, num_centres: int, num_points: int) -> Iterator[Tuple[int, int]]:
    """``(start, stop)`` ranges over the centres, each block ~BLOCK_ELEMENTS distances."""
    step = max(1, BLOCK_ELEMENTS // max(1, num_batch * num_points))
    for start in range(0, num_centres, step):
        yield start, min(start + step, num_centres)
