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
import copy  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import torch  # noqa: E402
from mmcv.transforms import Compose  # noqa: E402
from mmengine import dist  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from tqdm import tqdm  # noqa: E402

import gsclip_mm  # noqa: F401,E402  (fills the registries)
from gsclip_mm.gaussians import cut_object, fit_batch, prepare_fit_input, prepare_scene_fit_input  # noqa: E402
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


def collect_jobs(cfg: Config, splits, args):
    """[(name, dataset config without pipeline, pre-transforms, FitGaussians config)], duplicates dropped."""
    jobs, seen = [], set()
    for split in splits:
        configs = fitting_configs(cfg, split)
        if configs is None:
            continue
        ds_cfg, pre, fit_cfg = configs
        if args.cache_dir:
            fit_cfg['cache_dir'] = args.cache_dir
        fit_cfg.update(args.fit_options)
        if not fit_cfg.get('cache_dir'):
            raise ValueError(f'{SPLITS[split]}: FitGaussians has no cache_dir; set one (or --cache-dir)')
        sig = json.dumps([ds_cfg, pre, fit_cfg], sort_keys=True, default=str)
        if sig not in seen:
            seen.add(sig)
            jobs.append((split, ds_cfg, pre, fit_cfg))
    return jobs


class Stats:
    """Counts of one rank; merged over ranks at the end."""

    def __init__(self):
        self.total = self.fitted = self.cached = 0
        self.failures = []  # (object, reason, key or None)
        self.psnr = []  # (object, psnr) of objects fitted now or found in the cache
        self.fitted_keys = []  # keys fitted now (they leave the failure record)
        self.fit_seconds = 0.0
        self.scenes = []  # scene mode: (scene, psnr, Gaussians kept, pruned, points dropped by reason) fitted now

    def to_dict(self):
        return dict(total=self.total, fitted=self.fitted, cached=self.cached, failures=self.failures,
                    psnr=self.psnr, fitted_keys=self.fitted_keys, fit_seconds=self.fit_seconds, scenes=self.scenes)


def fit_and_save(todo, fitter, device, stats):
    """Fit ``todo`` = [(name, key, FitInput, save)] in one batch; save those marked (the others ride along).

    A batch that fails (one object's fit diverged) is refitted one object at a time, so only that object
    is lost.
    """
    if not todo:
        return
    t0 = time.perf_counter()
    try:
        results = fit_batch([t[2] for t in todo], fitter.settings, device, fitter.backend, return_images=False)
    except Exception as e:  # noqa: BLE001  counted, reported failure of this object
        if len(todo) == 1:
            name, key, _, save = todo[0]
            if save:
                stats.failures.append((name, f'{type(e).__name__}: {e}', key))
            return
        for t in todo:
            fit_and_save([t], fitter, device, stats)
        return
    stats.fit_seconds += time.perf_counter() - t0
    for (name, key, _, save), res in zip(todo, results):
        if save:
            fitter.cache.save(key, res.gaussians, dict(psnr=res.psnr, ssim=res.ssim, name=name))
            stats.fitted += 1
            stats.fitted_keys.append(key)
            stats.psnr.append((name, res.psnr))


def run_chunk(chunk, dataset, pre, fitter, device, stats, done_keys):
    """Fit one fixed chunk of dataset indices.

    The batch is every fittable object of the chunk, whatever the cache holds, and only the missing ones
    are written: a fit depends (at round-off level, see gsclip_mm/gaussians/fitting.py) on its batch, so
    fixed chunks make a resumed or resharded run write exactly what an uninterrupted one would.
    """
    members = []  # (name, key, info)
    for idx in chunk:
        info = dataset.get_data_info(idx)
        members.append((fitter.object_name(info), fitter.key(info), info))
    missing = {key for _, key, _ in members if key not in done_keys and not fitter.cache.exists(key)}
    todo = []
    for name, key, info in members:
        stats.total += 1
        save = key in missing
        if not save:
            hit = fitter.cache.load(key) if key not in done_keys else None
            if hit is not None or key in done_keys:
                stats.cached += 1
                if hit is not None:
                    stats.psnr.append((name, float(hit[1].get('psnr', math.nan))))
            else:  # a corrupt file (reported by load): refit it
                save = True
        try:
            results = pre(copy.deepcopy(info))
            if results is None:
                raise ValueError('a pipeline step dropped the object')
            inp = prepare_fit_input(results['points'], results['img'], results['depth2img'], results['bbox'],
                                    fitter.settings, name)
        except Exception as e:  # noqa: BLE001  counted, reported skip
            if save:
                stats.failures.append((name, f'{type(e).__name__}: {e}', key))
            continue
        todo.append((name, key, inp, save))
    if any(t[3] for t in todo):
        fit_and_save(todo, fitter, device, stats)
    done_keys.update(key for _, key, _ in members)


def scene_groups(dataset, indices):
    """[[dataset index, ...] per scene] in first-appearance order (a scene = its points file and image)."""
    groups = {}
    for idx in indices:
        info = dataset.get_data_info(idx)
        groups.setdefault((info['lidar_path'], info['img_path']), []).append(idx)
    return list(groups.values())


def load_scene(infos, pre, fitter):
    """The scene's FitInput: its image from the pipeline steps before FitGaussians (run on its first object
    they accept), all its points."""
    err = None
    for info in infos:
        try:
            results = pre(copy.deepcopy(info))
            if results is not None:
                break
        except Exception as e:  # noqa: BLE001  another object of the scene may load
            err = e
    else:
        raise ValueError(f'no object of the scene loads: {type(err).__name__}: {err}')
    return prepare_scene_fit_input(fitter.scene_points(infos[0]), results['img'], infos[0]['depth2img'],
                                   fitter.settings, infos[0]['lidar_path'])


def run_scene_chunk(chunk, dataset, pre, fitter, device, stats, done_keys):
    """Fit one fixed chunk of scenes (each a list of dataset indices), then cut and save their objects.

    As in object mode, every fittable scene of the chunk is in the optimisation whenever one of them needs
    fitting, and only missing fits are written (a resumed run writes what an uninterrupted one would).
    """
    scenes = []  # dict(infos, names, keys, scene_key, todo)
    for group in chunk:
        infos = [dataset.get_data_info(i) for i in group]
        keys = [fitter.key(info) for info in infos]
        todo = [k not in done_keys and not fitter.cache.exists(k) for k in keys]
        stats.total += len(infos)
        stats.cached += len(infos) - sum(todo)
        scenes.append(dict(infos=infos, names=[fitter.object_name(i) for i in infos], keys=keys, todo=todo,
                           scene_key=fitter.scene_key(infos[0], fitter.image_sha256(infos[0]))))
    fits = {}  # scene index -> (Gaussians [N, 14], psnr)
    need = [i for i, sc in enumerate(scenes) if any(sc['todo'])]
    for i in need:
        hit = fitter.cache.load(scenes[i]['scene_key'])
        if hit is not None:
            fits[i] = (hit[0], float(hit[1].get('psnr', math.nan)))
    if any(i not in fits for i in need):  # cached scene fits stay what the cuts are taken from
        fits.update({i: v for i, v in fit_scenes(scenes, fits, pre, fitter, device, stats).items() if i not in fits})
    for i in need:
        sc = scenes[i]
        for name, key, info, todo in zip(sc['names'], sc['keys'], sc['infos'], sc['todo']):
            if not todo:
                continue
            if not isinstance(fits.get(i), tuple):
                stats.failures.append((name, fits.get(i, 'the scene was not fitted'), key))
                continue
            try:
                cut = cut_object(fits[i][0], info['bbox_3d'], name)
            except Exception as e:  # noqa: BLE001  counted, reported skip
                stats.failures.append((name, f'{type(e).__name__}: {e}', key))
                continue
            fitter.cache.save(key, cut, dict(psnr=fits[i][1], name=name))
            stats.fitted += 1
            stats.fitted_keys.append(key)
            stats.psnr.append((name, fits[i][1]))
    for sc in scenes:
        done_keys.update(sc['keys'])


def fit_scenes(scenes, fits, pre, fitter, device, stats):
    """Fit every loadable scene of the chunk (one batch per image size), save the missing scene fits.

    Returns scene index -> (Gaussians, psnr), or -> the failure reason (str) for the scenes that failed.
    """
    out, inputs = {}, {}
    for i, sc in enumerate(scenes):
        try:
            inputs[i] = load_scene(sc['infos'], pre, fitter)
        except Exception as e:  # noqa: BLE001  every object of the scene fails with this reason
            out[i] = f'{type(e).__name__}: {e}'
    by_shape = {}
    for i, inp in inputs.items():
        by_shape.setdefault(inp.target.shape, []).append(i)
    for group in by_shape.values():
        t0 = time.perf_counter()
        try:
            results = fit_batch([inputs[i] for i in group], fitter.settings, device, fitter.backend,
                                return_images=False)
        except Exception as e:  # noqa: BLE001  a diverged fit: refit the group's scenes one at a time
            if len(group) == 1:
                out[group[0]] = f'{type(e).__name__}: {e}'
                continue
            for i in group:
                out[i] = _refit_one(i, inputs[i], scenes[i], fits, fitter, device, stats)
            continue
        stats.fit_seconds += time.perf_counter() - t0
        for i, res in zip(group, results):
            out[i] = _keep_scene(i, inputs[i], res, scenes[i], fits, fitter, stats)
    return out


def _refit_one(i, inp, scene, fits, fitter, device, stats):
    """One scene alone (after its batch failed): (Gaussians, psnr) or the failure reason."""
    try:
        res = fit_batch([inp], fitter.settings, device, fitter.backend, return_images=False)[0]
    except Exception as e:  # noqa: BLE001  counted, reported failure of this scene's objects
        return f'{type(e).__name__}: {e}'
    return _keep_scene(i, inp, res, scene, fits, fitter, stats)


def _keep_scene(i, inp, res, scene, fits, fitter, stats):
    """Record a fitted scene (saved when it was missing); its (Gaussians, psnr) or a failure reason."""
    if len(res.gaussians) == 0:
        return f'FitInputError: {inp.name}: every Gaussian was pruned'
    if any(scene['todo']) and i not in fits:
        fitter.cache.save(scene['scene_key'], res.gaussians, dict(psnr=res.psnr, ssim=res.ssim, name=inp.name,
                                                                  pruned=res.pruned))
        stats.scenes.append((inp.name, res.psnr, len(res.gaussians), res.pruned, res.counts))
    return res.gaussians, res.psnr


def run_job(split, ds_cfg, pre_cfg, fit_cfg, args, device, rank, world, stats, done_keys):
    dataset = DATASETS.build(dict(ds_cfg, pipeline=[]))
    pre = Compose([TRANSFORMS.build(t) for t in pre_cfg])
    fitter = TRANSFORMS.build(fit_cfg)
    indices = list(range(len(dataset)))[:args.limit]
    scene_mode = fitter.settings.mode == 'scene'
    units = scene_groups(dataset, indices) if scene_mode else indices  # what a chunk is made of
    chunks = [units[i:i + args.batch_size] for i in range(0, len(units), args.batch_size)][rank::world]
    mine = sum(len(c) for c in chunks)
    what = 'scenes' if scene_mode else 'objects'
    print_log(f'[{split}] {len(dataset)} objects{f" in {len(units)} scenes" if scene_mode else ""}, rank '
              f'{rank}/{world} fits {mine} {what} in chunks of {args.batch_size}; cache {fitter.cache.root}; '
              f'settings {fitter.settings}', logger='current')
    with tqdm(total=mine, unit=what[:-1], desc=f'fit {split}', disable=rank != 0, dynamic_ncols=True) as bar:
        for chunk in chunks:
            (run_scene_chunk if scene_mode else run_chunk)(chunk, dataset, pre, fitter, device, stats, done_keys)
            bar.update(len(chunk))
            if stats.psnr:
                bar.set_postfix(psnr=f'{sum(p for _, p in stats.psnr) / len(stats.psnr):.2f}dB',
                                failed=len(stats.failures))
    return fitter.cache


def try_write(what, write):
    """Run ``write()``; on OSError (a read-only cache, a full disk) warn instead: the fits are done."""
    try:
        write()
        return True
    except OSError as e:
        print_log(f'could not write the {what}: {e}', logger='current', level=logging.WARNING)
        return False


def summarise(all_stats, seconds, caches):
    """Merge the ranks' stats, print the summary, record failures and write <cache>/fit_summary.json."""
    merged = Stats()
    for s in all_stats:
        merged.total += s['total']
        merged.fitted += s['fitted']
        merged.cached += s['cached']
        merged.failures += [tuple(f) for f in s['failures']]
        merged.psnr += [tuple(p) for p in s['psnr']]
        merged.fitted_keys += s['fitted_keys']
        merged.fit_seconds += s['fit_seconds']
        merged.scenes += [tuple(x) for x in s.get('scenes', [])]
    values = [p for _, p in merged.psnr if not math.isnan(p)]
    summary = dict(objects=merged.total, fitted=merged.fitted, cached_before=merged.cached,
                   failed=len(merged.failures), failures=[dict(object=o, reason=r) for o, r, _ in merged.failures],
                   failure_reasons=dict(Counter(r.split(':')[0] for _, r, _ in merged.failures)),
                   psnr_mean=sum(values) / len(values) if values else None, psnr_min=min(values) if values else None,
                   seconds=seconds, objects_per_second=merged.fitted / seconds if seconds > 0 else None,
                   per_object_psnr={o: p for o, p in merged.psnr})
    if merged.scenes:  # scene mode: what fitting kept and removed, per scene fitted now
        dropped = Counter()
        for *_, counts in merged.scenes:
            dropped.update(counts)
        summary.update(scenes_fitted=len(merged.scenes), gaussians_kept=sum(x[2] for x in merged.scenes),
                       gaussians_pruned=sum(x[3] for x in merged.scenes), points_dropped=dict(dropped),
                       per_scene={sc: dict(psnr=p, gaussians=n, pruned=pr, points_dropped=c)
                                  for sc, p, n, pr, c in merged.scenes})
    lines = [f'Gaussian fitting: {merged.total} objects: {merged.fitted} fitted, {merged.cached} already cached, '
             f'{len(merged.failures)} failed; {seconds:.1f} s ({summary["objects_per_second"] or 0:.3f} fitted/s)']
    if values:
        lines.append(f'PSNR (render vs masked crop) mean {summary["psnr_mean"]:.2f} dB, min {summary["psnr_min"]:.2f} '
                     f'dB over {len(values)} objects')
    if merged.scenes:
        lines.append(f'scenes fitted now: {len(merged.scenes)}; Gaussians kept {summary["gaussians_kept"]}, pruned '
                     f'{summary["gaussians_pruned"]} (opacity under the threshold); points dropped before fitting: '
                     f'{summary["points_dropped"]}')
        if len(merged.scenes) <= 50:
            lines += [f'  scene {sc}: PSNR {p:.2f} dB, {n} Gaussians, {pr} pruned' for sc, p, n, pr, _ in merged.scenes]
    if len(merged.psnr) <= 50:
        lines += [f'  {o}: PSNR {p:.2f} dB' for o, p in merged.psnr]
    for o, r, _ in merged.failures:
        lines.append(f'  FAILED {o}: {r}')
    print_log('\n'.join(lines), logger='current')
    # The failure record lets datasets skip these objects (dropped in training, misses in testing).
    failed = {k: dict(object=o, reason=r) for o, r, k in merged.failures if k is not None}
    for cache in caches:
        try_write(f'failure record {cache.failures_path}', lambda c=cache: c.update_failures(
            {k: v for k, v in failed.items()}, merged.fitted_keys))
    root = caches[-1].root
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
    jobs = collect_jobs(cfg, args.splits, args)
    if not jobs:
        raise ValueError(f'{args.config}: no dataloader among {args.splits} has a dataset')
    stats, start, caches, done_keys = Stats(), time.perf_counter(), {}, set()
    for split, ds_cfg, pre_cfg, fit_cfg in jobs:
        cache = run_job(split, ds_cfg, pre_cfg, fit_cfg, args, device, rank, world, stats, done_keys)
        caches[cache.root] = cache
    all_stats = dist.all_gather_object(stats.to_dict()) if world > 1 else [stats.to_dict()]
    summary = None
    if rank == 0:
        summary = summarise(all_stats, time.perf_counter() - start, list(caches.values()))
    if world > 1:
        dist.barrier()
        torch.distributed.destroy_process_group()
    return summary


def cli(argv=None) -> int:
    """The command line: fit, then the exit status (see the module docstring)."""
    return exit_code(main(argv), parse_args(argv).allow_failures)


if __name__ == '__main__':
    sys.exit(cli())
