"""Config helpers the tools share: load a config, the runner flags of train.py and test.py, and find the
Gaussian-fitting step of its datasets.

``tools/fit_gaussians.py`` fits ahead of training what a config's
``FitGaussians`` step would fit; ``tools/analysis_tools/visualize_fit.py``
renders one such fit; ``tools/analysis_tools/reproduce_tables.py`` asks
whether a config fits at all. All three read the dataset config the same way
(through dataset wrappers, split at the fitting step), so it lives here.
"""
import argparse
import copy
import logging
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import TRANSFORMS, init_default_scope

#: Split name -> the config's dataloader key.
SPLITS = dict(train='train_dataloader', val='val_dataloader', test='test_dataloader')


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """The config at ``path`` with ``cfg_options`` (``--cfg-options``) merged last, and gsclip_mm's default
    scope set: the tools build its components from gsclip_mm's registries by their plain names."""
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope('gsclip_mm')
    return cfg


def add_runner_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags ``tools/train.py`` and ``tools/test.py`` share, as mmpretrain's tools spell them:
    ``--work-dir``, ``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    parser.add_argument('--work-dir', help='the directory for logs, checkpoints and metrics')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    # torchrun passes the rank through LOCAL_RANK; older launchers pass --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """``parser.parse_args()``, with ``LOCAL_RANK`` set from ``--local-rank`` when the launcher did not set it."""
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def apply_runner_args(cfg: Config, args: argparse.Namespace) -> Config:
    """The launcher and the work dir (``--work-dir``, else the config's, else ``work_dirs/<config name>``)."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def unwrap_dataset(cfg: dict) -> dict:
    """The innermost dataset config (through wrappers such as ClassBalancedDataset / RepeatDataset)."""
    while 'dataset' in cfg and isinstance(cfg['dataset'], dict):
        cfg = cfg['dataset']
    return cfg


def is_fit_step(transform: dict) -> bool:
    """Whether the transform config builds a Gaussian-fitting step: gsclip_mm's ``FitGaussians`` or a subclass
    of it, looked up through MMEngine's root TRANSFORMS registry (a name without a scope prefix is gsclip_mm's,
    the tools' default scope; the registry imports the transforms on first use)."""
    cls = transform.get('type', '')
    if isinstance(cls, str):
        try:
            cls = TRANSFORMS.get(cls if '.' in cls else f'gsclip_mm.{cls}')
        except KeyError:  # a scope that is not installed: not ours
            cls = None
    fit_cls = TRANSFORMS.get('gsclip_mm.FitGaussians')
    return isinstance(cls, type) and fit_cls is not None and issubclass(cls, fit_cls)


def find_fit_step(pipeline: Sequence[dict]) -> Optional[int]:
    """Index of the first Gaussian-fitting transform (:func:`is_fit_step`), None if there is none."""
    for i, t in enumerate(pipeline):
        if is_fit_step(t):
            return i
    return None


def split_pipeline(pipeline: Sequence[dict], where: str) -> Tuple[List[dict], dict]:
    """(copies of the transforms before FitGaussians, a copy of the FitGaussians config).

    Raises:
        ValueError: naming ``where`` when the pipeline has no FitGaussians step.
    """
    i = find_fit_step(pipeline)
    if i is None:
        raise ValueError(f'{where}: its pipeline has no FitGaussians step: nothing to fit')
    return copy.deepcopy([dict(t) for t in pipeline[:i]]), copy.deepcopy(dict(pipeline[i]))


def split_dataset(cfg: Config, split: str) -> Optional[dict]:
    """A plain-dict copy of the innermost dataset config of ``split`` (a key of :data:`SPLITS`); None when the
    config has no such dataloader or it has no dataset."""
    loader = cfg.get(SPLITS[split])
    if not loader or not loader.get('dataset'):
        return None
    ds = loader['dataset']
    return unwrap_dataset(copy.deepcopy(ds.to_dict() if hasattr(ds, 'to_dict') else dict(ds)))


def fitting_configs(cfg: Config, split: str) -> Optional[Tuple[dict, List[dict], dict]]:
    """(dataset config without its pipeline and its ``gaussian_fit``, transforms before FitGaussians, FitGaussians
    config) of ``split``; None when the config has no dataset for it.

    Raises:
        ValueError: the split's pipeline has no FitGaussians step.
    """
    ds_cfg = split_dataset(cfg, split)
    if ds_cfg is None:
        return None
    # The dataset is built to list every object, the recorded failures too (a rerun retries them).
    ds_cfg.pop('gaussian_fit', None)
    pre, fit_cfg = split_pipeline(ds_cfg.pop('pipeline', []), f'{SPLITS[split]}.dataset')
    return ds_cfg, pre, fit_cfg


def failure_exit_code(failed: int, total: int, allow_failures: float, consequence: str = '') -> int:
    """The exit status of a tool that processed ``total`` objects of which ``failed`` failed: 0 when at most
    ``allow_failures`` (a fraction) of them failed (a warning says so), else 1 (an error says what the failures
    mean, ``consequence``, and how to accept them)."""
    if failed == 0:
        return 0
    share = failed / max(total, 1)
    if share <= allow_failures:
        print_log(f'{failed} of {total} objects failed ({100 * share:.1f}%), within --allow-failures {allow_failures}',
                  logger='current', level=logging.WARNING)
        return 0
    print_log(f'{failed} of {total} objects failed ({100 * share:.1f}%); ' + (f'{consequence}. ' if consequence else '')
              + 'Pass --allow-failures FRACTION to accept this.', logger='current', level=logging.ERROR)
    return 1
