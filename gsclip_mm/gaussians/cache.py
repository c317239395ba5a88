"""On-disk cache of fitted Gaussians: one 3DGS PLY per object, named by a key, plus a record of failures.

The key hashes the object's inputs *as files* (the SHA-256 of the image
file's bytes, of the object's points, the camera and the box) and every
fitting setting that changes the fit (``FitSettings.key_dict``: all but the
rasteriser's tile side), so a changed input or setting never reuses a stale fit, and
the key does not depend on which JPEG decoder a machine has. The dataset
computes the two content hashes once per object when it is built
(:func:`file_sha256`, :func:`points_sha256`). A file is written to a
temporary name and renamed (atomic on POSIX), so a killed run leaves no
partial file under the final name. The PLY header carries the SHA-256 of its
body and the key; a file whose body does not match, or that does not parse,
is reported and treated as missing (then refitted).

``fit_failures.json`` in the cache folder records, by key, the objects that
``tools/fit_gaussians.py`` could not fit and why, so datasets skip them
(:class:`gsclip_mm.gaussians.GaussianFitter` reads and writes it).
"""
import hashlib
import json
import os.path as osp
from typing import Dict, Iterable, Optional, Sequence, Tuple

import mmengine
import numpy as np
from mmengine.logging import print_log

from gsclip_mm.utils import atomic_write
from .ply import PLYError, gaussians_to_ply, parse_ply, ply_to_gaussians

CACHE_VERSION = 3  # bump when the fitting code or the key changes what it produces (3: pruning, scene mode)
FAILURES_FILE = 'fit_failures.json'


def file_sha256(path: str, backend_args: Optional[dict] = None) -> str:
    """SHA-256 hex of a file's bytes (read through mmengine's file backends); errors name the file."""
    try:
        data = mmengine.fileio.get(path, backend_args=backend_args)
    except FileNotFoundError as e:
        raise FileNotFoundError(f'file not found: {path}') from e
    return hashlib.sha256(data).hexdigest()


def points_sha256(points: np.ndarray) -> str:
    """SHA-256 hex of an object's points [N, F] as float32 (shape included)."""
    pts = np.ascontiguousarray(np.asarray(points, dtype=np.float32))
    return hashlib.sha256(str(pts.shape).encode() + pts.tobytes()).hexdigest()


def cache_key(img_sha256: str, points_sha256: str, depth2img: np.ndarray, bbox: Sequence[float],
              settings: dict) -> str:
    """SHA-256 hex of the object's inputs (image file and points hashes, camera [3, 3], box [4]) and settings."""
    h = hashlib.sha256()
    h.update(f'gsclip_mm-gaussians-v{CACHE_VERSION}|{img_sha256}|{points_sha256}|'.encode())
    h.update(np.ascontiguousarray(np.asarray(depth2img, dtype=np.float64)).tobytes())
    h.update(np.asarray(bbox, dtype=np.float64).reshape(-1).tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def scene_cache_key(img_sha256: str, scene_points_sha256: str, depth2img: np.ndarray, settings: dict) -> str:
    """Key of a whole-scene fit: the image file and scene points hashes, the camera and every setting."""
    return cache_key(img_sha256, scene_points_sha256, depth2img, np.zeros(0), settings)


def cut_cache_key(scene_key: str, bbox_3d: Sequence[float]) -> str:
    """Key of one object's Gaussians cut from the scene fit ``scene_key`` by its 3D box ``[7]``."""
    box = np.asarray(bbox_3d, dtype=np.float64).reshape(-1)
    return hashlib.sha256(f'{scene_key}|cut|'.encode() + box.tobytes()).hexdigest()


class GaussianCache:
    """A folder of ``<key[:2]>/<key>.ply`` files.

    Args:
        root: the cache folder.
    """

    def __init__(self, root: str):
        self.root = root
        self.corrupt = 0  # files found corrupt (reported, then refitted) since construction

    @property
    def failures_path(self) -> str:
        return osp.join(self.root, FAILURES_FILE)

    def failures(self) -> Dict[str, dict]:
        """The failure record: key -> ``dict(object=name, reason=text)``; {} when there is none.

        Raises ValueError naming the file when it exists but is unreadable.
        """
        if not osp.isfile(self.failures_path):
            return {}
        try:
            with open(self.failures_path) as f:
                record = json.load(f)
            assert isinstance(record, dict) and all(isinstance(v, dict) and 'reason' in v for v in record.values())
        except (OSError, ValueError, AssertionError) as e:
            raise ValueError(f'{self.failures_path}: not a Gaussian fit failure record ({e}); delete it and '
                             f'rerun tools/fit_gaussians.py') from e
        return record

    def update_failures(self, failed: Dict[str, dict], fitted: Iterable[str]) -> Dict[str, dict]:
        """Add ``failed`` (key -> dict(object, reason)), drop the keys now ``fitted``; write atomically."""
        record = self.failures()
        for key in fitted:
            record.pop(key, None)
        record.update(failed)
        atomic_write(self.failures_path, json.dumps(record, indent=1, sort_keys=True).encode())
        return record

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
