"""Small helpers shared by the object dataset and the loading transforms.

Box convention (checked on the real scene 000017 of
``data/sunrgbd_sample``): ``bbox_3d = x y z dx dy dz yaw`` in depth
coordinates (z up), ``(x, y, z)`` is the box *centre* (mmdetection3d reads
SUN RGB-D boxes with origin (0.5, 0.5, 0.5)), ``dx dy dz`` are full sizes and
``yaw`` turns the box counter-clockwise about +z. With this reading all the
points in the bed's and the night stand's boxes project inside their 2D boxes;
with the opposite yaw sign or a bottom-centre origin they do not.
"""
import io
import os.path as osp
from typing import Optional

import mmengine
import numpy as np

try:
    from yaml import CSafeLoader as _YamlSafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _YamlSafeLoader

from gsclip_mm.utils.safe_pickle import ForbiddenGlobalError, restricted_loads


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


def _read_bytes(path: str, what: str, backend_args: Optional[dict] = None) -> bytes:
    """A file's bytes through mmengine's file backends; errors say ``what`` and name ``path``."""
    try:
        return mmengine.fileio.get(path, backend_args=backend_args)
    except FileNotFoundError as e:
        raise FileNotFoundError(f'{what} not found: {path}') from e
    except OSError as e:
        raise OSError(f'cannot read {what} {path}: {e}') from e


def load_points(path: str, num_feats: int, backend_args: Optional[dict] = None) -> np.ndarray:
    """Read a ``points/*.bin`` file: float32 ``[N, num_feats]``.

    Raises FileNotFoundError / ValueError naming the file when it is missing,
    unreadable or its size is not a whole number of ``num_feats`` floats.
    """
    raw = _read_bytes(path, 'points file', backend_args)
    if len(raw) % (4 * num_feats) != 0:
        raise ValueError(f'points file {path} holds {len(raw)} bytes, not a whole number of '
                         f'float32 rows of {num_feats} features')
    return np.frombuffer(raw, dtype=np.float32).reshape(-1, num_feats)


class InfosError(ValueError):
    """An infos file was read but is not a valid infos file (truncated, garbage, unsupported format)."""


# Suffix -> how to decode; mmengine.load's formats, with pickles through the restricted unpickler.
_INFOS_FORMATS = {'.pkl': 'pickle', '.pickle': 'pickle', '.json': 'json', '.yaml': 'yaml', '.yml': 'yaml'}


def load_infos(path: str, backend_args: Optional[dict] = None):
    """Read an infos file: mmdetection3d's ``.pkl`` / ``.pickle``, or ``.json`` / ``.yaml`` / ``.yml``.

    Pickles are decoded by :func:`gsclip_mm.utils.restricted_loads`: plain
    containers, numbers, strings and numpy arrays / scalars load as with
    ``mmengine.load``, but a pickle that names any other global
    (``posix.system``, ``builtins.eval``, ...) is refused before that global
    is called. json / yaml are decoded by ``mmengine.load``, yaml with
    PyYAML's safe loader (plain data; ``!!python/...`` tags are refused).

    Raises (every message names ``path``):
        FileNotFoundError: there is no file at ``path``.
        OSError: the file cannot be read (a directory, no permission, ...).
        gsclip_mm.utils.ForbiddenGlobalError: the pickle names a global outside
            the allow-list (a ``pickle.UnpicklingError``: a security refusal,
            kept apart from broken files).
        InfosError: the bytes do not decode (truncated, garbage, another
            format under the suffix, a yaml ``!!python`` tag) or the suffix is
            not a supported one (a ``ValueError``; the decoder's own exception
            is chained).
    """
    fmt = _INFOS_FORMATS.get(osp.splitext(str(path))[1].lower())
    if fmt is None:
        raise InfosError(f'infos file {path}: unsupported suffix, expected one of {sorted(_INFOS_FORMATS)}')
    raw = _read_bytes(path, 'infos file', backend_args)
    try:
        if fmt == 'pickle':
            return restricted_loads(raw)
        # mmengine's yaml Loader builds any Python object (`!!python/object/apply:os.system`): use the safe one.
        kwargs = dict(Loader=_YamlSafeLoader) if fmt == 'yaml' else {}
        return mmengine.load(io.StringIO(raw.decode('utf-8')), file_format=fmt, **kwargs)
    except ForbiddenGlobalError as e:
        raise ForbiddenGlobalError(f'infos file {path}: {e}') from e
    except Exception as e:  # noqa: BLE001 - any decoding failure means a broken file: name it
        raise InfosError(f'cannot decode infos file {path} as {fmt} ({type(e).__name__}: {e}); is it truncated '
                         f'or not an infos file?') from e
