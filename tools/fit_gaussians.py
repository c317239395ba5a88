"""Fit the Gaussians of every object of a config's datasets ahead of training, into the cache.

    python tools/fit_gaussians.py CONFIG [--batch-size 8] [--splits train val test]
    torchrun --nproc_per_node 2 tools/fit_gaussians.py CONFIG --launcher pytorch

Each dataset (train/val/test dataloader of CONFIG) is built from MMEngine's
DATASETS registry; each object runs the pipeline transforms *before*
``FitGaussians``, then fits run in batches with the settings of that
``FitGaussians`` (so the training pipeline finds them in its ``cache_dir``).

``mode='scene'`` (the paper): the objects are grouped by scene; each scene's
points are fitted against its whole image, ``--batch-size`` scenes per
optimisation (the paper: 10; scenes of one image size per batch), and every
object of the scene is cut from the fit with its 3D box (scene fit and cuts
are cached). ``mode='object'`` (ours): ``--batch-size`` objects per batch.

Fits run in fixed chunks of ``--batch-size`` consecutive scenes or objects
(chunks are sharded over ranks with ``--launcher pytorch``). Resumable: a
chunk whose results are all in the cache (and not corrupt) is skipped; one
with missing fits is fitted whole and only the missing ones are written, so a
resumed run writes exactly what an uninterrupted one would.

Objects that cannot be fitted are counted with their reasons and recorded in
``<cache_dir>/fit_failures.json``; datasets with that cache skip them. A
summary (objects, failures with reasons, PSNR mean / min, scenes, points
dropped before fitting and Gaussians pruned, time) is printed
and written to ``<cache_dir>/fit_summary.json``. Exit status: 1 when any
object failed (``--allow-failures FRACTION`` accepts up to that share), 0
otherwise, also when the summary cannot be written (a read-only cache: a
warning says so).
"""
if __name__ == '__main__':  # first, before anything imports torch: see gsclip_mm/utils/cpu_tuning.py
    import runpy
    from importlib.util import find_spec
    runpy.run_path(f"{find_spec('gsclip_mm').submodule_search_locations[0]}/utils/cpu_tuning.py")['tune_cpu']()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from mmcv.transforms import Compose  # noqa: E402
from mmengine import dist  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from tqdm import tqdm  # noqa: E402

import gsclip_mm  # noqa: F401,E402  (fills the registries)
from gsclip_mm.gaussians import FitStats  # noqa: E402
from gsclip_mm.registry import DATASETS, TRANSFORMS  # noqa: E402
from gsclip_mm.utils import atomic_write, init_gloo_from_torchrun  # noqa: E402
from gsclip_mm.utils.config_utils import SPLITS, failure_exit_code, fitting_configs, load_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Fit 3D Gaussians for every object of a dataset config')
    parser.add_argument('config', help='config file with a FitGaussians step in its dataset pipelines')
    parser.add_argument('--splits', nargs='+', default=list(SPLITS), choices=list(SPLITS),
                        help='which dataloaders of the config to fit')
    parser.add_argument('--batch-size', type=int, default=8,
                        help='objects (object mode) or scenes (scene mode) per optimisation')
    parser.add_argument('--device', default=None, help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--limit', type=int, default=None, help='fit at most this many objects per dataset')
    parser.add_argument('--cache-dir', default=None, help="override FitGaussians' cache_dir")
    parser.add_argument('--fit-options', nargs='+', action=DictAction, default={},
                        help='override fitting settings, e.g. num_steps=100 resolution=32')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    parser.add_argument('--allow-failures', type=float, default=0.0, metavar='FRACTION',
                        help='exit 0 when at most this fraction of the objects failed (default 0: any failure '
                        'exits 1; failed objects are recorded and skipped by the datasets either way)')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def collect_jobs(cfg: Config, splits, args, device):
    """[(name, dataset config without pipeline, pre-transforms, FitGaussians config)], duplicates dropped."""
    jobs, seen = [], set()
    for split in splits:
        configs = fitting_configs(cfg, split)
        if configs is None:
            continue
        ds_cfg, pre, fit_cfg = configs
        if args.cache_dir:
            fit_cfg['cache_dir'] = args.cache_dir
        fit_cfg.update(args.fit_options, device=device)
        if not fit_cfg.get('cache_dir'):
            raise ValueError(f'{SPLITS[split]}: FitGaussians has no cache_dir; set one (or --cache-dir)')
        sig = json.dumps([ds_cfg, pre, fit_cfg], sort_keys=True, default=str)
        if sig not in seen:
            seen.add(sig)
            jobs.append((split, ds_cfg, pre, fit_cfg))
    return jobs


def scene_groups(infos):
    """[[info, ...] per scene] in first-appearance order (a scene = its points file and image)."""
    groups = {}
    for info in infos:
        groups.setdefault((info['lidar_path'], info['img_path']), []).append(info)
    return list(groups.values())


def run_job(split, ds_cfg, pre_cfg, fit_cfg, args, rank, world, stats, done_keys):
    """Fit one split's objects: fixed chunks of ``--batch-size`` objects or scenes, sharded over the ranks."""
    dataset = DATASETS.build(dict(ds_cfg, pipeline=[]))
    pre = Compose([TRANSFORMS.build(t) for t in pre_cfg])
    fitter = TRANSFORMS.build(fit_cfg).fitter  # the fitting step's service: its settings, cache and keys
    infos = [dataset.get_data_info(i) for i in range(len(dataset))[:args.limit]]
    scene_mode = fitter.settings.mode == 'scene'
    units = scene_groups(infos) if scene_mode else infos  # what a chunk is made of
    chunks = [units[i:i + args.batch_size] for i in range(0, len(units), args.batch_size)][rank::world]
    mine, what = sum(len(c) for c in chunks), 'scenes' if scene_mode else 'objects'
    print_log(f'[{split}] {len(dataset)} objects{f" in {len(units)} scenes" if scene_mode else ""}, rank '
              f'{rank}/{world} fits {mine} {what} in chunks of {args.batch_size}; cache {fitter.cache.root}; '
              f'settings {fitter.settings}', logger='current')
    fit_chunk = fitter.fit_scene_chunk if scene_mode else fitter.fit_object_chunk
    with tqdm(total=mine, unit=what[:-1], desc=f'fit {split}', disable=rank != 0, dynamic_ncols=True) as bar:
        for chunk in chunks:
            fit_chunk(chunk, pre, stats, done_keys)
            bar.update(len(chunk))
            if stats.psnr:
                bar.set_postfix(psnr=f'{sum(p for _, p in stats.psnr) / len(stats.psnr):.2f}dB',
                                failed=len(stats.failures))
    return fitter


def try_write(what, write):
    """Run ``write()``; on OSError (a read-only cache, a full disk) warn instead: the fits are done."""
    try:
        write()
        return True
    except OSError as e:
        print_log(f'could not write the {what}: {e}', logger='current', level=logging.WARNING)
        return False


def report(merged, summary, seconds):
    """The summary's lines for the log."""
    lines = [f'Gaussian fitting: {merged.total} objects: {merged.fitted} fitted, {merged.cached} already cached, '
             f'{len(merged.failures)} failed; {seconds:.1f} s ({summary["objects_per_second"] or 0:.3f} fitted/s)']
    if summary['psnr_mean'] is not None:
        lines.append(f'PSNR (render vs masked crop) mean {summary["psnr_mean"]:.2f} dB, min {summary["psnr_min"]:.2f} '
                     f'dB over {sum(not math.isnan(p) for _, p in merged.psnr)} objects')
    if merged.scenes:
        lines.append(f'scenes fitted now: {len(merged.scenes)}; Gaussians kept {summary["gaussians_kept"]}, pruned '
                     f'{summary["gaussians_pruned"]} (opacity under the threshold); points dropped before fitting: '
                     f'{summary["points_dropped"]}')
        if len(merged.scenes) <= 50:
            lines += [f'  scene {sc}: PSNR {p:.2f} dB, {n} Gaussians, {pr} pruned' for sc, p, n, pr, _ in merged.scenes]
    if len(merged.psnr) <= 50:
        lines += [f'  {o}: PSNR {p:.2f} dB' for o, p in merged.psnr]
    return lines + [f'  FAILED {o}: {r}' for o, r, _ in merged.failures]


def summarise(all_stats, seconds, fitters):
    """Merge the ranks' stats, print the summary, record failures and write <cache>/fit_summary.json."""
    merged = FitStats.merge(all_stats)
    summary = merged.summary(seconds)
    print_log('\n'.join(report(merged, summary, seconds)), logger='current')
    # The failure record lets datasets skip these objects (dropped in training, misses in testing).
    for fitter in fitters:
        try_write(f'failure record {fitter.cache.failures_path}',
                  lambda f=fitter: f.record_failures(merged.failed_record(), merged.fitted_keys))
    root = fitters[-1].cache.root
    try_write('summary', lambda: atomic_write(os.path.join(root, 'fit_summary.json'),
                                              json.dumps(summary, indent=1).encode()))
    return summary


def exit_code(summary, allow_failures: float) -> int:
    """0 when at most ``allow_failures`` (a fraction) of the objects failed, else 1 (rank 0 decides)."""
    if summary is None:
        return 0
    return failure_exit_code(summary['failed'], summary['objects'], allow_failures,
                             'datasets will skip them (recorded in fit_failures.json)')


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    if args.launcher == 'pytorch':
        if torch.cuda.is_available():
            dist.init_dist('pytorch', backend='nccl')
        else:  # mmengine's init_dist sets a CUDA device; see gsclip_mm/utils/dist.py
            init_gloo_from_torchrun()
    rank, world = dist.get_rank(), dist.get_world_size()
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device.startswith('cuda') and world > 1:
        device = f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}'
    jobs = collect_jobs(cfg, args.splits, args, device)
    if not jobs:
        raise ValueError(f'{args.config}: no dataloader among {args.splits} has a dataset')
    stats, start, fitters, done_keys = FitStats(), time.perf_counter(), {}, set()
    for split, ds_cfg, pre_cfg, fit_cfg in jobs:
        fitter = run_job(split, ds_cfg, pre_cfg, fit_cfg, args, rank, world, stats, done_keys)
        fitters[fitter.cache.root] = fitter
    all_stats = dist.all_gather_object(stats.to_dict()) if world > 1 else [stats.to_dict()]
    summary = None
    if rank == 0:
        summary = summarise(all_stats, time.perf_counter() - start, list(fitters.values()))
    if world > 1:
        dist.barrier()
        torch.distributed.destroy_process_group()
    return summary


def cli(argv=None) -> int:
    """The command line: fit, then the exit status (see the module docstring)."""
    return exit_code(main(argv), parse_args(argv).allow_failures)


if __name__ == '__main__':
    sys.exit(cli())
