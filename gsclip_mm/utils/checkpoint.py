"""Let ``torch.load(weights_only=True)`` read MMEngine's own checkpoints.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: it unpickles
tensors and plain containers only. A checkpoint written by MMEngine 0.10.7's
Runner also holds its message hub (``HistoryBuffer`` objects whose logs are
numpy arrays) and numpy scalars, so MMEngine cannot load its own checkpoints
(``tools/test.py`` and ``--resume`` break). We allow-list exactly those types,
once, at import time. ``weights_only`` stays on: a checkpoint carrying any
other pickled object is still refused by torch with an error naming the type.

One entry needs care: a ``HistoryBuffer`` pickles its statistics methods as
``getattr(HistoryBuffer, 'min')``. Allowing the builtin ``getattr`` would let a
pickle reach any attribute of any allowed object (a classic escape), so we
register, under the name ``builtins.getattr``, a function that resolves only
those statistics methods and refuses everything else.
"""
import pickle
from typing import List

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _numpy_globals() -> List[object]:
    """Numpy types that a pickled ndarray / numpy scalar refers to."""
    try:  # numpy >= 2 moved the pickle helpers to numpy._core
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
              np.uint8, np.uint16, np.uint32, np.uint64, np.bool_]
    # numpy >= 1.25 pickles a dtype through its class (e.g. numpy.dtypes.Float64DType).
    dtype_classes = [type(np.dtype(t)) for t in dtypes]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


# The statistics HistoryBuffer registers for itself (``_set_default_statistics``).
_HISTORY_BUFFER_STATISTICS = {'min', 'max', 'current', 'mean'}


def _history_buffer_statistic(obj: object, name: str) -> object:
    """Stand-in for ``getattr`` while unpickling: only ``HistoryBuffer.<stat>``."""
    allowed = _HISTORY_BUFFER_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) in a checkpoint: gsclip_mm only allows '
        f'the statistics methods of mmengine HistoryBuffer ({sorted(allowed)})')


# Every non-tensor global found in a checkpoint of MMEngine 0.10.7's Runner.
CHECKPOINT_SAFE_GLOBALS: List[object] = [
    HistoryBuffer, *_numpy_globals(), (_history_buffer_statistic, 'builtins.getattr')
]


def register_checkpoint_safe_globals() -> None:
    """Allow-list :data:`CHECKPOINT_SAFE_GLOBALS` for ``weights_only`` loads.

    Idempotent; a no-op on torch versions without ``add_safe_globals``.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # pragma: no cover - torch < 2.4 loads pickles fully anyway
        return
    known = torch.serialization.get_safe_globals()
    add([g for g in CHECKPOINT_SAFE_GLOBALS if g not in known])
