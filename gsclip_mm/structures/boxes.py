"""Rotated 3D boxes: the one point-in-box test, below the datasets and the fitting that both use it.

Box convention (checked on the real scene 000017 of
``data/sunrgbd_sample``): ``bbox_3d = x y z dx dy dz yaw`` in depth
coordinates (z up), ``(x, y, z)`` is the box *centre* (mmdetection3d reads
SUN RGB-D boxes with origin (0.5, 0.5, 0.5)), ``dx dy dz`` are full sizes and
``yaw`` turns the box counter-clockwise about +z. With this reading all the
points in the bed's and the night stand's boxes project inside their 2D boxes;
with the opposite yaw sign or a bottom-centre origin they do not.
"""
import numpy as np


def points_in_rboxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Which points lie inside which rotated 3D boxes (faces included).

    The one points-in-box test of the package: the dataset's point counts, the
    object points of ``LoadObjectPoints`` and the synthetic scenes' annotations
    all come from it, so they agree exactly.

    Args:
        points: ``[N, >=3]`` points, xyz in the first three columns.
        boxes: ``[B, 7]`` boxes, or one box ``[7]``: ``x y z dx dy dz yaw``
            (centre, full sizes, counter-clockwise yaw about +z).

    Returns:
        ``[B, N]`` bool mask, or ``[N]`` for one box ``[7]``.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    assert points.ndim == 2 and points.shape[1] >= 3, f'points must be [N, >=3], got {points.shape}'
    assert boxes.shape == (7, ) or (boxes.ndim == 2 and boxes.shape[1] == 7), \
        f'boxes must be [B, 7] or [7], got {boxes.shape}'
    one_box = boxes.ndim == 1
    boxes = boxes.reshape(-1, 7)  # [B, 7]
    xyz = points[:, :3]  # [N, 3]
    cos, sin = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])  # [B]
    half = boxes[:, 3:6] / 2  # [B, 3]
    # Cheap pre-filter: the axis-aligned box around each rotated box, widened by 1 mm so that
    # it never drops a point the exact test keeps (a scene box holds a small share of points).
    reach = np.stack([np.abs(cos) * half[:, 0] + np.abs(sin) * half[:, 1],
                      np.abs(sin) * half[:, 0] + np.abs(cos) * half[:, 1], half[:, 2]], 1) + 1e-3  # [B, 3]
    lo, hi = (boxes[:, :3] - reach).astype(xyz.dtype), (boxes[:, :3] + reach).astype(xyz.dtype)  # [B, 3]
    near = np.ones((len(boxes), len(xyz)), dtype=bool)  # [B, N]
    for k in range(3):
        near &= (xyz[None, :, k] >= lo[:, k, None]) & (xyz[None, :, k] <= hi[:, k, None])
    b, n = np.nonzero(near)  # candidate (box, point) pairs
    # Exact test in float64 (so the dataset's count at init and LoadObjectPoints agree exactly):
    # rotate the offsets by -yaw into the box frame.
    d = xyz[n].astype(np.float64) - boxes[b, :3]  # [M, 3]
    local_x = d[:, 0] * cos[b] + d[:, 1] * sin[b]  # [M]
    local_y = -d[:, 0] * sin[b] + d[:, 1] * cos[b]  # [M]
    inside = ((np.abs(local_x) <= half[b, 0]) & (np.abs(local_y) <= half[b, 1]) & (np.abs(d[:, 2]) <= half[b, 2]))
    mask = np.zeros_like(near)
    mask[b[inside], n[inside]] = True
    return mask[0] if one_box else mask
