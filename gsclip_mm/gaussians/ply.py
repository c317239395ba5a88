"""Gaussians [N, 14] <-> the standard 3DGS PLY (as written by gsplat's exporter), as pure functions on bytes.

Stored per vertex (float32, little endian): ``x y z f_dc_0..2 opacity
scale_0..2 rot_0..3`` with the 3DGS activations undone: ``f_dc = (rgb - 0.5) /
C0`` (SH degree 0), ``opacity = logit(opacity)``, ``scale = log(scale)``,
``rot`` = the wxyz quaternion. Extra metadata (checksum, fit quality) rides in
one ``comment`` header line, which PLY readers skip.
"""
import json
from typing import Optional, Tuple

import numpy as np
import torch

from gsclip_mm.structures import GS_DIM, GS_OPACITY, GS_QUAT, GS_RGB, GS_SCALE, GS_XYZ

SH_C0 = 0.28209479177387814
PROPERTIES = ('x', 'y', 'z', 'f_dc_0', 'f_dc_1', 'f_dc_2', 'opacity', 'scale_0', 'scale_1', 'scale_2', 'rot_0',
              'rot_1', 'rot_2', 'rot_3')
META_PREFIX = b'comment gsclip_mm '


class PLYError(ValueError):
    """A PLY file that is not a readable 3DGS PLY (wrong header, truncated body)."""


def gaussians_to_ply(gaussians: np.ndarray, meta: Optional[dict] = None) -> bytes:
    """Gaussians [N, 14] -> PLY bytes (gsplat's ``splat2ply_bytes`` layout) with ``meta`` as a comment."""
    from gsplat.exporter import splat2ply_bytes
    gs = torch.as_tensor(np.asarray(gaussians, dtype=np.float32))
    assert gs.dim() == 2 and gs.shape[1] == GS_DIM, gs.shape
    opacity = gs[:, GS_OPACITY.start].clamp(1e-7, 1 - 1e-7).double()
    data = splat2ply_bytes(
        means=gs[:, GS_XYZ], scales=gs[:, GS_SCALE].clamp_min(1e-30).log(), quats=gs[:, GS_QUAT],
        opacities=(opacity.log() - torch.log1p(-opacity)).float(), sh0=(gs[:, GS_RGB] - 0.5) / SH_C0,
        shN=gs.new_zeros(gs.shape[0], 0))
    if meta is None:
        return data
    comment = META_PREFIX + json.dumps(meta, sort_keys=True).encode() + b'\n'
    first = data.index(b'\n', data.index(b'format')) + 1  # after the format line
    return data[:first] + comment + data[first:]


def parse_ply(data: bytes, name: str = '<bytes>') -> Tuple[np.ndarray, dict, bytes]:
    """PLY bytes -> (vertex table [N, P] float32 in file order, meta dict, body bytes).

    Any malformed header (a short line, a bad count, metadata that is not a
    JSON object, a second element, ...) raises :class:`PLYError` naming ``name``.
    """
    end = data.find(b'end_header\n')
    if not data.startswith(b'ply\n') or end < 0:
        raise PLYError(f'{name}: not a PLY file (no ply/end_header)')
    header = data[:end].decode('ascii', errors='replace').splitlines()
    body = data[end + len(b'end_header\n'):]
    meta, props, count = {}, [], None
    for i, line in enumerate(header[1:], start=2):
        words = line.split()
        bad = lambda why: PLYError(f'{name}: header line {i} {line!r}: {why}')  # noqa: E731
        if line.startswith(META_PREFIX.decode()):
            try:
                meta = json.loads(line[len(META_PREFIX):])
            except json.JSONDecodeError as e:
                raise bad(f'unreadable metadata: {e}') from e
            if not isinstance(meta, dict):
                raise bad('metadata is not a JSON object')
        elif not words or words[0] in ('comment', 'obj_info'):
            continue
        elif words[0] == 'format':
            if words[1:] != ['binary_little_endian', '1.0']:
                raise bad('only binary_little_endian 1.0 PLY is supported')
        elif words[0] == 'element':
            if count is not None or len(words) != 3 or words[1] != 'vertex' or not words[2].isdigit():
                raise bad('expected one "element vertex <count>"')
            count = int(words[2])
        elif words[0] == 'property':
            if count is None or len(words) != 3:
                raise bad('expected "property float <name>" after the vertex element')
            if words[1] not in ('float', 'float32'):
                raise bad(f'property {words[2]} is {words[1]}, expected float')
            props.append(words[2])
        else:
            raise bad('unknown header keyword')
    if count is None or not props:
        raise PLYError(f'{name}: no vertex element with properties')
    if len(body) != count * len(props) * 4:
        raise PLYError(f'{name}: truncated or oversized body: {len(body)} bytes for {count} vertices x '
                       f'{len(props)} floats')
    table = np.frombuffer(body, dtype='<f4').reshape(count, len(props)).astype(np.float32)
    return table, dict(meta, _properties=props), body


def ply_to_gaussians(data: bytes, name: str = '<bytes>') -> Tuple[np.ndarray, dict]:
    """PLY bytes -> (Gaussians [N, 14] float32, meta dict). Extra properties (normals, f_rest) are ignored."""
    table, meta, _ = parse_ply(data, name)
    props = meta.pop('_properties')
    missing = [p for p in PROPERTIES if p not in props]
    if missing:
        raise PLYError(f'{name}: not a 3DGS PLY, missing properties {missing}')
    col = {p: table[:, props.index(p)] for p in PROPERTIES}
    out = np.empty((table.shape[0], GS_DIM), dtype=np.float32)
    out[:, GS_XYZ] = np.stack([col['x'], col['y'], col['z']], 1)
    out[:, GS_RGB] = np.stack([col[f'f_dc_{i}'] for i in range(3)], 1) * SH_C0 + 0.5
    out[:, GS_OPACITY] = 1.0 / (1.0 + np.exp(-col['opacity'].astype(np.float64)))[:, None]
    out[:, GS_SCALE] = np.exp(np.stack([col[f'scale_{i}'] for i in range(3)], 1))
    quat = np.stack([col[f'rot_{i}'] for i in range(4)], 1)
    out[:, GS_QUAT] = quat / np.linalg.norm(quat, axis=1, keepdims=True).clip(1e-12)
    return out, meta
