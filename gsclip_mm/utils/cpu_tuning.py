"""Process-wide settings that make PyTorch's CPU path fast on small machines.

Tools call these at start-up (they change the whole process, so the library
never applies them by itself):

* ``OMP_WAIT_POLICY=PASSIVE`` (set in the environment before torch loads
  libgomp): threads sleep at OpenMP barriers instead of spinning, so on a
  shared 2-core CPU a spinning thread does not eat its partner's slice.
* :func:`tune_glibc_malloc`: PyTorch's CPU allocator does not cache; with
  glibc's defaults every large temporary is a fresh ``mmap`` whose pages
  fault in on first touch. Keeping freed memory in the heap measured 20-55%
  faster backbone steps and 3-4x faster fitting steps here
  (docs/benchmarks.md).
"""
import ctypes


def tune_glibc_malloc() -> bool:
    """Raise glibc's mmap / trim thresholds; False where there is no glibc ``mallopt``."""
    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 1 << 30)
                and libc.mallopt(m_top_pad, 256 << 20))
