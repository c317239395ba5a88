"""Ball query: up to K neighbours within a radius of each centre."""
import torch

from ._mmcv import use_mmcv
from .distance import centre_blocks, square_distance


def _check_query_args(xyz: torch.Tensor, center_xyz: torch.Tensor, num_sample: int) -> None:
    assert xyz.dim() == 3 and xyz.shape[-1] == 3, f'xyz must be [B, N, 3], got {tuple(xyz.shape)}'
    assert center_xyz.dim() == 3 and center_xyz.shape[-1] == 3 and center_xyz.shape[0] == xyz.shape[0], \
        f'center_xyz must be [B={xyz.shape[0]}, M, 3], got {tuple(center_xyz.shape)}'
    if num_sample < 1:
        raise ValueError(f'num_sample must be >= 1, got {num_sample}')


@torch.no_grad()
def ball_query(min_radius: float, max_radius: float, num_sample: int, xyz: torch.Tensor,
               center_xyz: torch.Tensor) -> torch.Tensor:
    """Indices of the first ``num_sample`` points (in index order) in each ball.

    mmcv's rule and argument order: point ``n`` is in the ball of centre ``m``
    when ``d2 == 0`` or ``min_radius^2 <= d2 < max_radius^2``. A ball with
    fewer than K points repeats its first point; an empty ball gives index 0.
    Uses mmcv's ``ball_query`` kernel on CUDA float32 tensors when present.

    Args:
        min_radius (float): inner radius (0 for a full ball).
        max_radius (float): outer radius, ``> min_radius``.
        num_sample (int): K, neighbours per centre.
        xyz (Tensor): ``[B, N, 3]`` positions.
        center_xyz (Tensor): ``[B, M, 3]`` ball centres.

    Returns:
        Tensor: ``[B, M, K]`` int64 indices into N; not differentiable.
    """
    _check_query_args(xyz, center_xyz, num_sample)
    if not 0 <= min_radius < max_radius:
        raise ValueError(f'need 0 <= min_radius < max_radius, got {min_radius}, {max_radius}')
    ops = use_mmcv(xyz, center_xyz)
    if ops is not None:
        return ops.ball_query(float(min_radius), float(max_radius), num_sample, xyz.contiguous(),
                              center_xyz.contiguous()).long()
    B, N, _ = xyz.shape
    blocks = [
        _first_in_ball(min_radius, max_radius, num_sample, xyz, center_xyz[:, a:b])
        for a, b in centre_blocks(B, center_xyz.shape[1], N)
    ]
    return torch.cat(blocks, dim=1) if len(blocks) != 1 else blocks[0]


def _first_in_ball(min_radius: float, max_radius: float, num_sample: int, xyz: torch.Tensor,
                   center_xyz: torch.Tensor) -> torch.Tensor:
    """:func:`ball_query` on one block of centres: ``[B, m, 3]`` -> ``[B, m, K]``."""
    B, m, _ = center_xyz.shape
    N = xyz.shape[1]
    d2 = square_distance(center_xyz, xyz)  # [B, m, N]
    inside = d2 < max_radius**2  # [B, m, N]
    if min_radius > 0:
        inside &= (d2 >= min_radius**2) | (d2 == 0)
    # nonzero lists the inside points row by row in index order; each one's
    # rank within its row says whether it is among the row's first K.
    b, r, n = inside.nonzero(as_tuple=True)  # [T] each
    row = b * m + r  # [T] flat ball id
    counts = torch.bincount(row, minlength=B * m)  # [B * m]
    rank = torch.arange(row.numel(), device=row.device) - (counts.cumsum(0) - counts)[row]  # [T]
    keep = rank < num_sample
    idx = torch.full((B * m, num_sample), N, dtype=torch.long, device=xyz.device)
    idx[row[keep], rank[keep]] = n[keep]
    idx = idx.view(B, m, num_sample)
    first = idx[..., :1]  # [B, m, 1]
    first = torch.where(first == N, 0, first)  # empty ball: index 0, as mmcv
    return torch.where(idx == N, first, idx)  # short balls repeat their first point


def _ball_query_reference(min_radius: float, max_radius: float, num_sample: int, xyz: torch.Tensor,
                          center_xyz: torch.Tensor) -> torch.Tensor:
    """Slow, obvious ball query: mmcv's kernel written as Python loops."""
    _check_query_args(xyz, center_xyz, num_sample)
    out = []
    for cloud, centres in zip(xyz, center_xyz):
        rows = []
        for c in centres:
            found = []
            for n, p in enumerate(cloud):
                d2 = float(((c[0] - p[0])**2 + (c[1] - p[1])**2 + (c[2] - p[2])**2))
                if d2 == 0 or min_radius**2 <= d2 < max_radius**2:
                    found.append(n)
                if len(found) == num_sample:
                    break
            found = found or [0]
            rows.append(found + [found[0]] * (num_sample - len(found)))
        out.append(rows)
    return torch.tensor(out, dtype=torch.long, device=xyz.device)
