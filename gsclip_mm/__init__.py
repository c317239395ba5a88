"""gsclip_mm: GS-CLIP (language-image-3D Gaussian pre-training) for MMEngine.

Importing the package fills its registries (``gsclip_mm.registry``) and
allow-lists the types that MMEngine's own checkpoints carry, so that
``torch.load(weights_only=True)`` (the default since torch 2.6) reads them.
It first checks the installed dependency versions
(``gsclip_mm.utils.deps.REQUIRED_VERSIONS``, from package metadata only) and
raises ImportError naming any package outside its supported range.
"""
from .utils.deps import check_dependencies

check_dependencies()

from .utils import register_checkpoint_safe_globals  # noqa: E402
from .version import __version__  # noqa: E402

register_checkpoint_safe_globals()

from . import datasets, evaluation, models, structures  # noqa: E402,F401

__all__ = ['__version__', 'register_checkpoint_safe_globals']
