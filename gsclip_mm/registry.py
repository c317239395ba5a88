"""Registries of gsclip_mm.

Each registry is a child of MMEngine's root registry of the same kind, with
scope ``gsclip_mm`` and ``locations`` naming the subpackage whose import fills
it, so ``Runner.from_cfg`` with ``default_scope='gsclip_mm'`` builds every
component without hand-written imports, and another project reaches them as
``type='gsclip_mm.NAME'``.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

__all__ = [
    'RUNNERS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS', 'DATASETS', 'DATA_SAMPLERS',
    'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR', 'TASK_UTILS', 'VISUALIZERS',
    'VISBACKENDS'
]

# Runners, loops, hooks and log processors: MMEngine's own, reachable in our
# scope (no locations: gsclip_mm adds none of these).
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, scope='gsclip_mm')
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='gsclip_mm')
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='gsclip_mm')
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS, scope='gsclip_mm')

# Object datasets (SUN RGB-D layout, real or synthetic) and their samplers.
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='gsclip_mm', locations=['gsclip_mm.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, scope='gsclip_mm',
                         locations=['gsclip_mm.datasets'])
# Pipeline steps: loading, Gaussian fitting, sampling, normalisation, packing.
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='gsclip_mm',
                      locations=['gsclip_mm.datasets.transforms'])

# Backbones, heads, classifiers and data preprocessors.
MODELS = Registry('model', parent=MMENGINE_MODELS, scope='gsclip_mm', locations=['gsclip_mm.models'])
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope='gsclip_mm',
                          locations=['gsclip_mm.models'])
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS, scope='gsclip_mm',
                               locations=['gsclip_mm.models'])
TASK_UTILS = Registry('task util', parent=MMENGINE_TASK_UTILS, scope='gsclip_mm', locations=['gsclip_mm.models'])

# Optimisation: MMEngine's optimisers, wrappers and schedulers in our scope.
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, scope='gsclip_mm')
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='gsclip_mm')
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                      scope='gsclip_mm')
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, scope='gsclip_mm')

# Zero-shot metrics and the evaluator that runs them.
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='gsclip_mm', locations=['gsclip_mm.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, scope='gsclip_mm', locations=['gsclip_mm.evaluation'])

# Visualisation backends (MMEngine's).
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, scope='gsclip_mm')
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, scope='gsclip_mm')
