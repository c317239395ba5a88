"""Compute the CLIP image embedding of every object crop of a config's datasets once, into the cache.

    python tools/extract_image_embeddings.py CONFIG [--splits train] [--batch-size 64] [--device cuda]

For each dataloader of CONFIG whose dataset pipeline has a ``LoadCLIPImageEmbedding``
step, every object's crop is cut as that pipeline's ``LoadObjectImage`` cuts
it, preprocessed as open_clip does for that CLIP (``CLIPImagePreprocess``),
encoded by the frozen image tower in batches of ``--batch-size`` and written
to the step's ``cache_dir``, keyed by the crop's content digest (image file
SHA-256 + box), the CLIP's identity and the preprocessing recipe: exactly
where the training pipeline looks. A training step then reads one small file
per object and runs no image tower.

Resumable: crops already in the cache are skipped (files are written
atomically, so an interrupted run leaves no partial file). Objects whose crop
cannot be read are listed with their reasons and the exit status is 1
(``--allow-failures FRACTION`` accepts up to that share). Embeddings computed
here in batches and those the pipeline computes one at a time on a miss
agree to float round-off (batched matrix products sum in another order).
"""
if __name__ == '__main__':  # first, before anything imports torch: see gsclip_mm/utils/cpu_tuning.py
    import runpy
    from importlib.util import find_spec
    runpy.run_path(f"{find_spec('gsclip_mm').submodule_search_locations[0]}/utils/cpu_tuning.py")['tune_cpu']()

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from tqdm import tqdm  # noqa: E402

import gsclip_mm  # noqa: F401,E402  (fills the registries)
from gsclip_mm.registry import DATASETS, TRANSFORMS  # noqa: E402
from gsclip_mm.utils.config_utils import SPLITS, failure_exit_code, load_config, split_dataset  # noqa: E402

STEP = 'LoadCLIPImageEmbedding'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Cache the CLIP image embedding of every object crop')
    parser.add_argument('config', help=f'config with a {STEP} step in its dataset pipelines')
    parser.add_argument('--splits', nargs='+', default=list(SPLITS), choices=list(SPLITS),
                        help='which dataloaders of the config to walk (those without the step are skipped)')
    parser.add_argument('--batch-size', type=int, default=64, help='crops per image-tower call')
    parser.add_argument('--device', default=None, help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--limit', type=int, default=None, help='at most this many objects per dataset')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    parser.add_argument('--allow-failures', type=float, default=0.0, metavar='FRACTION',
                        help='exit 0 when at most this fraction of the objects failed (default 0)')
    return parser.parse_args(argv)


def _type(step) -> str:
    return str(step.get('type', '')).split('.')[-1]


def collect_jobs(cfg: Config, splits):
    """[(split, dataset config without pipeline, LoadObjectImage config, LoadCLIPImageEmbedding config)]."""
    jobs, seen = [], set()
    for split in splits:
        ds_cfg = split_dataset(cfg, split)
        if ds_cfg is None:
            continue
        pipeline = [dict(t) for t in ds_cfg.pop('pipeline', [])]
        steps = [t for t in pipeline if _type(t) == STEP]
        if not steps:
            continue
        load = [t for t in pipeline if _type(t) == 'LoadObjectImage']
        if not load:
            raise ValueError(f'{SPLITS[split]}: its pipeline has {STEP} but no LoadObjectImage to cut the crops')
        if steps[0].get('cache_dir') is False:
            raise ValueError(f'{SPLITS[split]}: {STEP} has cache_dir=False: there is no cache to fill')
        sig = json.dumps([ds_cfg, load[0], steps[0]], sort_keys=True, default=str)
        if sig not in seen:
            seen.add(sig)
            jobs.append((split, ds_cfg, load[0], steps[0]))
    return jobs


def encode_and_store(todo, step, stats):
    """Encode ``todo`` = [(digest, [3, S, S] tensor)] in one image-tower call and write each embedding."""
    if not todo:
        return
    emb = step.encode(torch.stack([t[1] for t in todo]))  # [B, D]
    for (digest, _), e in zip(todo, emb):
        step.store(digest, e)
    stats['encoded'] += len(todo)


def run_job(split, ds_cfg, load_cfg, step_cfg, args, device, stats, done):
    dataset = DATASETS.build(dict(ds_cfg, pipeline=[]))
    load = TRANSFORMS.build(load_cfg)
    step = TRANSFORMS.build(dict(step_cfg, device=device))
    indices = list(range(len(dataset)))[:args.limit]
    print_log(f'[{split}] {len(dataset)} objects; CLIP {step.identity}; cache {step.cache.folder}; '
              f'preprocessing {step.preprocess.cfg}', logger='current')
    todo = []
    with tqdm(total=len(indices), unit='obj', desc=f'embed {split}', dynamic_ncols=True) as bar:
        for idx in indices:
            info = dataset.get_data_info(idx)
            name = f'{info.get("img_path", "?")}#{info.get("instance_idx", "?")}'
            stats['objects'] += 1
            try:
                results = copy.deepcopy(info)
                if 'img_sha256' not in results:  # no file hash: the digest needs the crop's pixels
                    results = load(results)
                digest = step.crop_digest(results)
                if (step.cache.folder, digest) in done or step.lookup(digest) is not None:
                    stats['cached'] += 1
                else:
                    done.add((step.cache.folder, digest))
                    if 'img_crop' not in results:
                        results = load(results)
                    todo.append((digest, step.preprocess.apply(results['img_crop'])))
            except Exception as e:  # noqa: BLE001  counted, reported failure of this object
                stats['failures'].append((name, f'{type(e).__name__}: {e}'))
            if len(todo) >= args.batch_size:
                encode_and_store(todo, step, stats)
                todo = []
            bar.update(1)
            bar.set_postfix(encoded=stats['encoded'], cached=stats['cached'], failed=len(stats['failures']))
        encode_and_store(todo, step, stats)


def main(argv=None):
    args = parse_args(argv)
    if args.batch_size < 1:
        raise ValueError(f'--batch-size must be at least 1, got {args.batch_size}')
    cfg = load_config(args.config, args.cfg_options)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    jobs = collect_jobs(cfg, args.splits)
    if not jobs:
        raise ValueError(f'{args.config}: no dataloader among {args.splits} has a {STEP} step in its pipeline')
    stats, done, start = dict(objects=0, encoded=0, cached=0, failures=[]), set(), time.perf_counter()
    for job in jobs:
        run_job(*job, args, device, stats, done)
    seconds = time.perf_counter() - start
    lines = [f'CLIP image embeddings: {stats["objects"]} objects: {stats["encoded"]} encoded, {stats["cached"]} '
             f'already cached (or repeated), {len(stats["failures"])} failed; {seconds:.1f} s']
    lines += [f'  FAILED {o}: {r}' for o, r in stats['failures']]
    print_log('\n'.join(lines), logger='current')
    return dict(stats, seconds=seconds)


def exit_code(summary, allow_failures: float) -> int:
    """0 when at most ``allow_failures`` (a fraction) of the objects failed, else 1."""
    return failure_exit_code(len(summary['failures']), summary['objects'], allow_failures)


def cli(argv=None) -> int:
    return exit_code(main(argv), parse_args(argv).allow_failures)


if __name__ == '__main__':
    sys.exit(cli())
