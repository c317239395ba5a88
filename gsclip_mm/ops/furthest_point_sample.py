"""Farthest-point sampling (FPS)."""
import torch

from ._mmcv import use_mmcv


def _check_fps_args(xyz: torch.Tensor, num_points: int) -> None:
    assert xyz.dim() == 3 and xyz.shape[-1] == 3, f'xyz must be [B, N, 3], got {tuple(xyz.shape)}'
    if not 0 < num_points <= xyz.shape[1]:
        raise ValueError(f'num_points must be in [1, N={xyz.shape[1]}], got {num_points}')


@torch.no_grad()
def furthest_point_sample(xyz: torch.Tensor, num_points: int) -> torch.Tensor:
    """Iterative farthest-point sampling, starting from point 0 of each cloud.

    Each step picks the point whose distance to the already chosen set is
    largest (the lowest index among ties, as ``torch.argmax`` does). The loop
    runs over the ``num_points`` steps; each step is vectorised over the batch
    and the points. On CUDA float32 tensors with mmcv's compiled ops, mmcv's
    ``furthest_point_sample`` kernel runs instead (same rule; ties may break
    differently). Distances are computed in the dtype of ``xyz``: float64
    separates points whose float32 squared distances round to a tie.

    Args:
        xyz (Tensor): ``[B, N, 3]`` positions.
        num_points (int): M, the number of points to pick, ``1 <= M <= N``.

    Returns:
        Tensor: ``[B, M]`` int64 indices into N; not differentiable.
    """
    _check_fps_args(xyz, num_points)
    ops = use_mmcv(xyz)
    if ops is not None:
        return ops.furthest_point_sample(xyz.contiguous(), num_points).long()
    B, N, _ = xyz.shape
    planes = xyz.permute(2, 0, 1).contiguous()  # [3, B, N]: planar coordinates broadcast fast
    min_d2 = xyz.new_full((B, N), float('inf'))  # [B, N] distance to the chosen set
    sq, d2 = xyz.new_empty((3, B, N)), xyz.new_empty((B, N))  # scratch, reused every step
    last = xyz.new_zeros((B, 1), dtype=torch.long)  # [B, 1]; the first pick is point 0
    picked = [last]
    # Few ops per step: their dispatch, not the arithmetic, dominates on a single cloud. The sum
    # runs in the reference's order, (dx^2 + dy^2) + dz^2, so float64 clouds match it bit for bit.
    for _ in range(1, num_points):
        torch.sub(planes, planes.gather(2, last.expand(3, B, 1)), out=sq).square_()  # [3, B, N]
        torch.add(sq[0], sq[1], out=d2).add_(sq[2])  # [B, N]
        torch.minimum(min_d2, d2, out=min_d2)
        last = min_d2.argmax(dim=1, keepdim=True)  # [B, 1]: the lowest index among ties
        picked.append(last)
    return torch.cat(picked, dim=1)  # [B, M]


def _furthest_point_sample_reference(xyz: torch.Tensor, num_points: int) -> torch.Tensor:
    """Slow, obvious FPS: Python loops over clouds, steps and points."""
    _check_fps_args(xyz, num_points)
    out = []
    for cloud in xyz.tolist():
        chosen = [0]
        dist = [float('inf')] * len(cloud)
        for _ in range(1, num_points):
            last = cloud[chosen[-1]]
            for j, p in enumerate(cloud):
                d = sum((a - b) ** 2 for a, b in zip(p, last))
                dist[j] = min(dist[j], d)
            best = max(range(len(cloud)), key=lambda j: (dist[j], -j))  # lowest index wins ties
            chosen.append(best)
        out.append(chosen)
    return torch.tensor(out, dtype=torch.long, device=xyz.device)
