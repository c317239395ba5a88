"""Train a gsclip_mm model from a config (mmpretrain's ``tools/train.py`` CLI)."""
if __name__ == '__main__':  # first, before anything imports torch: see gsclip_mm/utils/cpu_tuning.py
    import runpy
    from importlib.util import find_spec
    runpy.run_path(f"{find_spec('gsclip_mm').submodule_search_locations[0]}/utils/cpu_tuning.py")['tune_cpu']()

import argparse  # noqa: E402

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import gsclip_mm  # noqa: F401,E402  (fills the registries, allow-lists checkpoint types)
from gsclip_mm.utils import setup_cpu_distributed, teardown_distributed  # noqa: E402
from gsclip_mm.utils.config_utils import add_runner_args, apply_runner_args, parse_runner_args  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Train a GS-CLIP model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument('--amp', action='store_true', help='enable automatic-mixed-precision training')
    parser.add_argument('--no-validate', action='store_true', help='skip validation during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the total batch (processes x batch per process) over the config\'s '
                        'auto_scale_lr.base_batch_size (the batch its lr was set for)')
    add_runner_args(parser)
    return parse_runner_args(parser)


def merge_args(cfg, args):
    """Merge command-line arguments into the config; ``--cfg-options`` last."""
    apply_runner_args(cfg, args)

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        assert optim_wrapper in ['OptimWrapper', 'AmpOptimWrapper'], \
            '`--amp` is not supported by this optimizer wrapper type ' \
            f'`{optim_wrapper}`.'
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError(f'{args.config}: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    cfg = setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    teardown_distributed()


if __name__ == '__main__':
    main()
