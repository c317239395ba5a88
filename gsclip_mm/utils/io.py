"""The one way gsclip_mm writes a file: complete or not at all."""
import os
import os.path as osp
import tempfile


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, then ``os.replace``.

    A run killed mid-write leaves the old file (or none) and no temporary
    file; the folder is created when missing. The file is made
    world-readable (``mkstemp`` creates 0600) since data and caches are shared.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + osp.basename(path) + '.', suffix='.tmp')
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
