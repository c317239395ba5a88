"""Cameras: mmdetection3d's ``depth2img`` split into gsplat's ``K`` and ``viewmat``.

``depth2img`` (3x3) maps a depth-frame point ``p`` to ``(u*w, v*w, w)``: the
intrinsics times a rotation (axis change and tilt), no translation, the camera
at the origin. gsplat wants a world-to-camera ``viewmat`` (4x4) and ``K`` (3x3),
so we split ``depth2img = s * K @ R`` by an RQ decomposition (``K`` upper
triangular, positive focal lengths, ``K[2, 2] = 1``; ``R`` orthonormal).
"""
from typing import Sequence, Tuple

import numpy as np

from gsclip_mm.utils.errors import ObjectError

# SUN RGB-D's pixel coordinates minus gsplat's for the same point: 1-based pixel centres (u = j + 1 for
# 0-based column j) against centres at j + 0.5.
SUNRGBD_PIXEL_OFFSET = 0.5


class FitInputError(ObjectError):
    """An object that cannot be fitted (bad points, camera, box or image)."""


def rq3(mat: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """RQ decomposition of a 3x3 matrix: ``mat = upper @ ortho``, ``diag(upper) >= 0``."""
    flip = np.eye(3)[::-1]
    q, r = np.linalg.qr((flip @ mat).T)
    upper = flip @ r.T @ flip
    ortho = flip @ q.T
    signs = np.diag(np.where(np.diag(upper) < 0, -1.0, 1.0))
    return upper @ signs, signs @ ortho


def decompose_depth2img(depth2img: np.ndarray, name: str = 'depth2img') -> Tuple[np.ndarray, np.ndarray]:
    """Split ``depth2img`` [3, 3] into ``K`` [3, 3] (``K[2, 2] == 1``) and ``R`` [3, 3].

    ``K @ R`` equals ``depth2img / depth2img_scale`` where the scale is a positive
    number, so projections (u, v) are unchanged and ``R @ p`` is the camera-frame
    point with its metric depth in z. Raises :class:`FitInputError` on a
    non-finite or degenerate matrix.
    """
    mat = np.asarray(depth2img, dtype=np.float64)
    if mat.shape != (3, 3):
        raise FitInputError(f'{name} must be 3x3, got shape {mat.shape}')
    if not np.isfinite(mat).all():
        raise FitInputError(f'{name} has non-finite entries: {mat.tolist()}')
    if np.linalg.matrix_rank(mat, tol=1e-9 * max(np.abs(mat).max(), 1e-30)) < 3:
        raise FitInputError(f'{name} is degenerate (rank < 3): {mat.tolist()}')
    upper, rot = rq3(mat)
    scale = upper[2, 2]
    if scale <= 0:
        raise FitInputError(f'{name} gives a non-positive depth scale: {mat.tolist()}')
    intr = upper / scale
    if intr[0, 0] <= 0 or intr[1, 1] <= 0:
        raise FitInputError(f'{name} gives non-positive focal lengths: {intr.tolist()}')
    return intr, rot


def crop_intrinsics(intr: np.ndarray, box: Sequence[int], out_w: int, out_h: int) -> np.ndarray:
    """Intrinsics [3, 3] of the image region ``box`` (0-based pixels x1, y1, x2, y2) resized to ``out_w x out_h``.

    SUN RGB-D's ``depth2img`` is MATLAB's: the centre of 0-based pixel column
    ``j`` is at ``u = j + 1`` (each point's colour is exactly
    ``img[round(v) - 1, round(u) - 1]``; tested on the real scene), while
    gsplat's pixel ``i`` covers ``[i, i + 1)`` with its centre at ``i + 0.5``:
    hence the shift by -0.5 (``SUNRGBD_PIXEL_OFFSET``) before cropping.
    """
    x1, y1, x2, y2 = box
    shift = np.array([[1.0, 0, -SUNRGBD_PIXEL_OFFSET - x1], [0, 1.0, -SUNRGBD_PIXEL_OFFSET - y1], [0, 0, 1.0]])
    zoom = np.diag([out_w / (x2 - x1), out_h / (y2 - y1), 1.0])
    return zoom @ shift @ intr


def viewmat_from_rotation(rot: np.ndarray) -> np.ndarray:
    """World-to-camera 4x4 from a rotation [3, 3] (camera at the origin)."""
    view = np.eye(4)
    view[:3, :3] = rot
    return view
