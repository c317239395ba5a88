"""Lazy access to mmcv's compiled point ops (CUDA kernels).

``mmcv-lite`` ships ``mmcv/ops/*.py`` but not the compiled ``mmcv._ext``, so
``import mmcv.ops`` fails there; the full ``mmcv`` built with CUDA has it.
Nothing here imports ``mmcv.ops`` at module import time.
"""
import functools
import importlib
from types import ModuleType
from typing import Optional

import torch


@functools.lru_cache(maxsize=None)
def _mmcv_ops() -> Optional[ModuleType]:
    """Return ``mmcv.ops`` when its compiled extension imports, else None."""
    try:
        return importlib.import_module('mmcv.ops')
    except Exception:  # ImportError, or an ABI error from a mismatched build
        return None


def mmcv_ops_available() -> bool:
    """Whether mmcv's compiled ops (``mmcv._ext``) can be imported."""
    return _mmcv_ops() is not None


def use_mmcv(*tensors: torch.Tensor) -> Optional[ModuleType]:
    """``mmcv.ops`` if every tensor is a float32 CUDA tensor and the ops exist.

    The kernels only take float32; other dtypes and CPU tensors take the
    pure PyTorch path.
    """
    if not all(t.is_cuda and t.dtype == torch.float32 for t in tensors):
        return None
    return _mmcv_ops()
