"""Test a gsclip_mm checkpoint from a config (mmpretrain's ``tools/test.py`` CLI).

The checkpoint must fit the model exactly (no missing or unexpected keys)
unless ``--non-strict``: a checkpoint of another variant (e.g. a GAF checkpoint
under the no-GAF config) would otherwise be scored with partly random weights.
A config with ``training_free = True`` (PointCLIP-style zero-shot, or a
model whose init_cfg loads a pre-trained part) is tested without a
checkpoint: the model's ``init_weights`` runs instead.
Objects the dataset could not fit count as misses and are reported by the
metric; they are not an error (exit status 0). ``--out`` dumps them too
(their data samples: ground truth and reason, no prediction).
"""
if __name__ == '__main__':  # first, before anything imports torch: see gsclip_mm/utils/cpu_tuning.py
    import runpy
    from importlib.util import find_spec
    runpy.run_path(f"{find_spec('gsclip_mm').submodule_search_locations[0]}/utils/cpu_tuning.py")['tune_cpu']()

import argparse  # noqa: E402

from mmengine.config import Config  # noqa: E402
from mmengine.evaluator import DumpResults  # noqa: E402
from mmengine.model import is_model_wrapper  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import gsclip_mm  # noqa: F401,E402  (fills the registries, allow-lists checkpoint types)
from gsclip_mm.utils import setup_cpu_distributed, teardown_distributed  # noqa: E402
from gsclip_mm.utils.config_utils import add_runner_args, apply_runner_args, parse_runner_args  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Test (zero-shot evaluate) a GS-CLIP model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint file; omit (or "none") for a config with `training_free = True`, whose model takes its '
        'weights from its own construction and init_cfg (PointCLIP, CLIP2Point zero-shot)')
    parser.add_argument('--out', help='the file to dump predictions to (.pkl), e.g. results.pkl')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='load the checkpoint even if its keys differ from the model\'s (missing / unexpected keys are only '
        'warned about). Default: strict, a mismatch is an error naming the keys')
    add_runner_args(parser)
    return parse_runner_args(parser)


def merge_args(cfg, args):
    """Merge command-line arguments into the config; ``--cfg-options`` last."""
    apply_runner_args(cfg, args)
    if args.checkpoint in (None, 'none'):
        if not cfg.get('training_free', False):
            raise ValueError(f'{args.config} needs a checkpoint (only a config with `training_free = True` '
                             f'is tested without one)')
        cfg.load_from = None
    else:
        cfg.load_from = args.checkpoint
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def load_strictly(runner, config: str) -> None:
    """Make the runner's own checkpoint loading strict, naming the file and the config on a mismatch.

    The runner still loads ``cfg.load_from`` itself (after the ``before_run``
    hooks, as MMEngine orders it), but with ``strict=True``. The model's
    ``state_dict`` holds only trainable parts and persistent buffers (the
    frozen CLIP and non-persistent buffers are outside it), exactly what
    ``tools/train.py`` saves, so a checkpoint of the same config fits.
    """
    load = runner.load_checkpoint

    def load_checkpoint(filename, *args, **kwargs):
        kwargs['strict'] = True
        try:
            return load(filename, *args, **kwargs)
        except RuntimeError as e:
            if 'do not match' not in str(e):
                raise
            raise RuntimeError(f'checkpoint {filename} does not fit the model of {config}:\n{e}'
                               f'Use the config the checkpoint was trained with, or pass --non-strict to load '
                               f'the matching keys only.') from None

    runner.load_checkpoint = load_checkpoint


def main():
    args = parse_args()
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl file, got {args.out!r}')
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    cfg = setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    if cfg.load_from is None:  # training-free: the model's init_cfg (e.g. a pre-trained encoder) is its weights
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.init_weights()
    if not args.non_strict:
        load_strictly(runner, args.config)
    if args.out is not None:
        # MMEngine's own dumper: it writes every object the metric saw, recorded misses included.
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    runner.test()
    teardown_distributed()


if __name__ == '__main__':
    main()
