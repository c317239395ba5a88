"""On-disk cache of fitted Gaussians: one 3DGS PLY per object, named by a key.

The key hashes the input data (points, the image region, camera, box) and
every fitting setting, so a changed input or setting never reuses a stale fit.
A file is written to a temporary name and renamed (atomic on POSIX), so a
killed run leaves no partial file under the final name. The PLY header carries
the SHA-256 of its body and the key; a file whose body does not match, or
that does not parse, is reported and treated as missing (then refitted).
"""
import hashlib
import json
import os.path as osp
from typing import Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from gsclip_mm.utils import atomic_write
from .ply import PLYError, gaussians_to_ply, parse_ply, ply_to_gaussians

CACHE_VERSION = 1  # bump when the fitting code changes what it produces


def cache_key(points: np.ndarray, img: np.ndarray, depth2img: np.ndarray, bbox: Sequence[float],
              settings: dict) -> str:
    """SHA-256 hex of the inputs (points [N, 6], the image inside the rounded box, camera, box) and settings."""
    h = hashlib.sha256()
    h.update(f'gsclip_mm-gaussians-v{CACHE_VERSION}'.encode())
    pts = np.ascontiguousarray(np.asarray(points, dtype=np.float32))
    h.update(str(pts.shape).encode() + pts.tobytes())
    box = np.asarray(bbox, dtype=np.float64).reshape(-1)
    h.update(box.tobytes())
    h.update(np.ascontiguousarray(np.asarray(depth2img, dtype=np.float64)).tobytes())
    if isinstance(img, np.ndarray) and img.ndim == 3 and np.isfinite(box).all() and box.size == 4:
        x1, y1 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        x2, y2 = int(np.ceil(box[2])), int(np.ceil(box[3]))
        region = np.ascontiguousarray(img[y1:y2, x1:x2])
        h.update(str(img.shape).encode() + region.tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


class GaussianCache:
    """A folder of ``<key[:2]>/<key>.ply`` files.

    Args:
        root: the cache folder.
    """

    def __init__(self, root: str):
        self.root = root
        self.corrupt = 0  # files found corrupt (reported, then refitted) since construction

    def path(self, key: str) -> str:
        return osp.join(self.root, key[:2], key + '.ply')

    def exists(self, key: str) -> bool:
        return osp.isfile(self.path(key))

    def save(self, key: str, gaussians: np.ndarray, meta: Optional[dict] = None) -> str:
        """Write the Gaussians [N, 14] under ``key``; returns the path."""
        body = gaussians_to_ply(gaussians)
        body = body[body.index(b'end_header\n') + len(b'end_header\n'):]
        full = dict(meta or {}, key=key, body_sha256=hashlib.sha256(body).hexdigest(), num=int(len(gaussians)))
        path = self.path(key)
        atomic_write(path, gaussians_to_ply(gaussians, full))
        return path

    def load(self, key: str) -> Optional[Tuple[np.ndarray, dict]]:
        """(Gaussians [N, 14], meta) or None when missing or corrupt (a corrupt file is reported)."""
        path = self.path(key)
        if not osp.isfile(path):
            return None
        try:
            with open(path, 'rb') as f:
                data = f.read()
            _, meta, body = parse_ply(data, path)
            if meta.get('key') != key:
                raise PLYError(f'{path}: written for key {meta.get("key")}, not {key}')
            if meta.get('body_sha256') != hashlib.sha256(body).hexdigest():
                raise PLYError(f'{path}: body checksum mismatch')
            gaussians, meta = ply_to_gaussians(data, path)
            if not np.isfinite(gaussians).all():
                raise PLYError(f'{path}: non-finite values')
        except Exception as e:  # noqa: BLE001  whatever is wrong with a cache file, the cure is a refit
            self.corrupt += 1
            print_log(f'corrupt Gaussian cache file, will refit: {e}', logger='current', level=30)
            return None
        return gaussians, meta
