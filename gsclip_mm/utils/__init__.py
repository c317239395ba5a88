from .checkpoint import CHECKPOINT_SAFE_GLOBALS, register_checkpoint_safe_globals
from .class_names import readable_class_name
from .cpu_tuning import tune_glibc_malloc
from .dist import init_gloo_from_torchrun, setup_cpu_distributed, teardown_distributed
from .io import atomic_write
from .safe_pickle import ForbiddenGlobalError, restricted_loads

__all__ = [
    'CHECKPOINT_SAFE_GLOBALS', 'register_checkpoint_safe_globals', 'tune_glibc_malloc', 'init_gloo_from_torchrun',
    'setup_cpu_distributed', 'teardown_distributed', 'readable_class_name',
    'atomic_write', 'ForbiddenGlobalError', 'restricted_loads'
]
