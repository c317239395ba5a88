"""Process-wide settings that make PyTorch's CPU path fast on small machines.

Tools apply them at start-up with :func:`tune_cpu` (they change the whole
process, so the library never applies them by itself):

* ``OMP_WAIT_POLICY=PASSIVE``: threads sleep at OpenMP barriers instead of
  spinning, so on a shared 2-core CPU a spinning thread does not eat its
  partner's slice. libgomp reads the variable once, when torch loads it:
  set later, it changes nothing (measured: 100 small 2-thread ops with pauses
  cost 0.02 s of CPU with it set first, 0.4-1.1 s unset or set after
  ``import torch``).
* :func:`tune_glibc_malloc`: PyTorch's CPU allocator does not cache; with
  glibc's defaults every large temporary is a fresh ``mmap`` whose pages
  fault in on first touch. Keeping freed memory in the heap measured 20-55%
  faster backbone steps and 3-4x faster fitting steps here
  (docs/benchmarks.md).

This module imports only the standard library, because it must run before
torch is imported, and importing anything through the ``gsclip_mm`` package
imports torch (the package fills its registries on import). Tools therefore
run this file by its path, before their other imports::

    if __name__ == '__main__':  # first, before anything imports torch
        import runpy
        from importlib.util import find_spec
        runpy.run_path(f"{find_spec('gsclip_mm').submodule_search_locations[0]}/utils/cpu_tuning.py")['tune_cpu']()

(``find_spec`` of a top-level package locates it without running it; only a
run as a script is tuned, so a test that imports a tool changes nothing.)
"""
import ctypes
import os
import sys
import warnings
from typing import MutableMapping


def set_omp_wait_policy(environ: MutableMapping[str, str] = os.environ, policy: str = 'PASSIVE') -> str:
    """Default ``OMP_WAIT_POLICY`` in ``environ`` (a process's, or a child's to be); an explicit setting wins.

    Returns the value in force.
    """
    return environ.setdefault('OMP_WAIT_POLICY', policy)


def tune_glibc_malloc() -> bool:
    """Raise glibc's mmap / trim thresholds; False where there is no glibc ``mallopt``."""
    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 1 << 30)
                and libc.mallopt(m_top_pad, 256 << 20))


def tune_cpu() -> bool:
    """Both settings for this process; returns whether the wait policy applies to it.

    Called after torch is imported (a tool run from a process that has it), the
    policy cannot apply any more: a warning says so, and only malloc is tuned.
    """
    tune_glibc_malloc()
    if 'torch' in sys.modules:
        warnings.warn('tune_cpu() ran after torch was imported: libgomp has already read OMP_WAIT_POLICY, '
                      'so OpenMP threads keep its default wait policy (see gsclip_mm/utils/cpu_tuning.py)')
        return False
    set_omp_wait_policy()
    return True
