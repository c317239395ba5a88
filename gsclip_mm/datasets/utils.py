"""Small helpers shared by the object dataset and the loading transforms: reading points and infos files."""
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
