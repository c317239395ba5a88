"""Reproduce the zero-shot tables (paper Tables 1 and 2 layouts, and the depth-map table) in one command.

For each config: fit its Gaussians (when its pipelines fit any; cached and
resumable), train it (resuming what is there; a training-free config is not
trained), test its last checkpoint (or, training-free, its own weights) with
``--out``, then score the dumped predictions with ``ZeroShotAccuracy`` and
write Tables 1 and 2 in the paper's layouts, with the protocol (seed, split,
class lists) beside them. Every step is a tool of its own; a finished step is
skipped on a second run, so an interrupted run continues where it stopped.

The depth-map table (ours, issue 13: ``--tables depth``) puts the depth-map
family that GS-CLIP's paper cites, PointCLIP (points, and depth splatted from
the fitted Gaussians), CLIP2Point zero-shot and CLIP2Point's Gated Dual-Path
Adapter k-shot, beside GS-CLIP and the CLIP^2 baseline: the same test split,
the same metric. The rows that need CLIP2Point's pre-trained depth encoder get
the checkpoint of its pre-training config, trained first (resumably) into the
work root, or the one given by ``--pretrained-depth``. A row whose config does
not exist for the data set says "no config".

    python tools/analysis_tools/reproduce_tables.py                    # the synthetic set (make demo's)
    python tools/analysis_tools/reproduce_tables.py --data sunrgbd37   # converted SUN RGB-D in data/sunrgbd/
    python tools/analysis_tools/reproduce_tables.py --tables depth --rows 'PointCLIP (points)' 'CLIP2Point zero-shot'
"""
import argparse
import os.path as osp
import pickle
import subprocess
import sys

from mmengine.config import Config

import gsclip_mm  # noqa: F401  (allow-lists checkpoint types)
from gsclip_mm.evaluation import ZeroShotAccuracy
from gsclip_mm.structures.categories import resolve_classes
from gsclip_mm.utils import atomic_write
from gsclip_mm.utils.config_utils import SPLITS, find_fit_step, split_dataset

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository: tools/analysis_tools/../..
# The steps' tools, relative to ROOT (run as commands: no tool imports another).
FIT, TRAIN, TEST = 'tools/fit_gaussians.py', 'tools/train.py', 'tools/test.py'
EXTRACT = 'tools/extract_image_embeddings.py'


# The configs of the paper's Tables 1 and 2 (and our size ablation) for each data set.
def table_configs(stem: str, baseline: str, extra=()):
    """{table row: config path} for one data set: Table 1 (GS-CLIP, the CLIP^2-style baseline) and Table 2."""
    nogaf = stem.replace('-gaf_', '_')
    return {
        'GS-CLIP': f'configs/gsclip/{stem}.py',
        'CLIP^2 (PointNet++)': f'configs/gsclip/{baseline}.py',
        'tab2-balance': f'configs/gsclip/{nogaf}_tab2-balance.py',
        'tab2-imgloss': f'configs/gsclip/{nogaf}_tab2-imgloss.py',
        'tab2-gaf': f'configs/gsclip/{stem}_tab2-gaf.py',
        'tab2-balance-imgloss': f'configs/gsclip/{nogaf}_tab2-balance-imgloss.py',
        **{name: f'configs/gsclip/{stem}_{suffix}.py' for name, suffix in extra},
    }


DATASETS = dict(
    synthetic=table_configs('gsclip_pointnet2-tiny-gaf_1xb32-cosine-20e_synthetic',
                            'clip2_pointnet2-tiny_1xb32-cosine-20e_synthetic',
                            extra=[('GS-CLIP w/o size feature (ours)', 'no-size')]),
    sunrgbd37=table_configs('gsclip_pointnet2-ssg-gaf_1xb32-cosine-100e_sunrgbd37',
                            'clip2_pointnet2-ssg_1xb32-cosine-100e_sunrgbd37'))
SYNTHETIC = list(DATASETS['synthetic'].values())
# Table 2's switches per row: (data balance, image loss, GAF); the last row is GS-CLIP itself.
TABLE2 = {'tab2-balance': (1, 0, 0), 'tab2-imgloss': (0, 1, 0), 'tab2-gaf': (0, 0, 1),
          'tab2-balance-imgloss': (1, 1, 0), 'GS-CLIP': (1, 1, 1)}


# The depth-map table (ours, issue 13): these rows beside Table 1's GS-CLIP and CLIP^2 rows.
DEPTH_BESIDE = ('GS-CLIP', 'CLIP^2 (PointNet++)')
SHOTS = (1, 2, 4, 8, 16)


def depth_configs(data: str) -> dict:
    """{row: config path} of the depth-map family for one data set; a path that does not exist is a row that
    says "no config" (the few-shot configs exist for the synthetic set only)."""
    def path(stem):
        return f'configs/clip2point/{stem}_{data}.py'
    return {
        'PointCLIP (points)': path('pointclip_points_zeroshot'),
        'PointCLIP (Gaussians)': path('pointclip_gaussians_zeroshot'),
        'CLIP2Point zero-shot': path('clip2point_zeroshot'),
        **{f'CLIP2Point GDPA {k}-shot (points)': path(f'clip2point_gdpa_points_{k}shot') for k in SHOTS},
        'CLIP2Point GDPA 16-shot (Gaussians)': path('clip2point_gdpa_gaussians_16shot'),
    }


DEPTH = {data: depth_configs(data) for data in DATASETS}
# CLIP2Point's image-depth pre-training, whose depth encoder the zero-shot and adapter rows load.
PRETRAIN = {data: f'configs/clip2point/clip2point_pretrain_1xb32-cosine-10e_{data}.py' for data in DATASETS}
TABLES = ('1', '2', 'depth')


def table_rows(data: str, tables=TABLES) -> list:
    """The rows the chosen tables need, each once, in table order."""
    rows = []
    if '1' in tables:
        rows += [r for r in DATASETS[data] if not r.startswith('tab2-')]
    if '2' in tables:
        rows += [r for r in DATASETS[data] if r in TABLE2]
    if 'depth' in tables:
        rows += list(DEPTH_BESIDE) + list(DEPTH[data])
    return list(dict.fromkeys(rows))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Fit, train, test and tabulate the configs of Tables 1 and 2 '
                                     'and of the depth-map table')
    parser.add_argument('--data', choices=sorted(DATASETS), default='synthetic',
                        help='synthetic (default: make demo\'s set) or sunrgbd37 (the converted real data under '
                        "the configs' data_root, data/sunrgbd/)")
    parser.add_argument('--tables', nargs='+', choices=TABLES, default=list(TABLES),
                        help='1 and 2: the paper\'s Tables 1 and 2; depth: PointCLIP, CLIP2Point zero-shot and '
                        'CLIP2Point\'s adapter k-shot beside GS-CLIP and CLIP^2 (default: all three)')
    parser.add_argument('--rows', nargs='+', default=None,
                        help='only these rows of the chosen tables, by name as the tables print them, e.g. '
                        '"PointCLIP (points)" "CLIP2Point GDPA 4-shot (points)" (default: all)')
    parser.add_argument('--pretrained-depth', default=None, metavar='CHECKPOINT',
                        help='the CLIP2Point pre-training checkpoint for the rows that load its depth encoder '
                        '(default: train the pre-training config into the work root, resuming what is there)')
    parser.add_argument('--work-root', default=osp.join(ROOT, 'work_dirs', 'tables'))
    parser.add_argument('--out', default=None, help='markdown file (default <work-root>/<data>/results.md, '
                        'results_<tables>.md for a part of the tables; written atomically)')
    return parser.parse_args(argv)


def run(cmd):
    print('$ ' + ' '.join(cmd), flush=True)
    subprocess.run([sys.executable, *cmd], check=True, cwd=ROOT)


def has_fitting(cfg: Config, split: str = 'train') -> bool:
    """Whether the pipeline of ``split`` fits Gaussians (the CLIP^2-style baseline does not)."""
    ds = split_dataset(cfg, split)
    return ds is not None and find_fit_step(ds.get('pipeline', [])) is not None


def fitting_splits(cfg: Config) -> list:
    """The splits whose pipelines fit Gaussians (a training-free config fits its test split only)."""
    return [split for split in SPLITS if has_fitting(cfg, split)]


def has_step(cfg: Config, step: str, split: str = 'train') -> bool:
    """Whether the pipeline of ``split`` has a transform of type ``step`` (with or without a scope prefix)."""
    ds = split_dataset(cfg, split)
    return ds is not None and any(str(t.get('type', '')).split('.')[-1] == step for t in ds.get('pipeline', []))


def depth_checkpoint_option(cfg: Config):
    """The ``--cfg-options`` key through which a config loads CLIP2Point's pre-trained depth encoder: the
    adapter's ``model.pretrained_depth``, or the zero-shot backbone's ``init_cfg`` checkpoint (prefix
    ``depth_encoder.``); None for a config that loads none."""
    model = cfg.model
    if 'pretrained_depth' in model:
        return 'model.pretrained_depth'
    init = (model.get('backbone') or {}).get('init_cfg') or {}
    if init.get('type') == 'Pretrained' and init.get('prefix') == 'depth_encoder.':
        return 'model.backbone.init_cfg.checkpoint'
    return None


def training_of(cfg: Config) -> str:
    """What a row trains on, read from its config (the depth table's "training" column)."""
    pretrained = depth_checkpoint_option(cfg) is not None
    if cfg.get('training_free', False):
        return 'image-depth pre-training (no labels)' if pretrained else 'none (training-free)'
    ds = cfg.train_dataloader.dataset
    if ds.get('type') == 'KShotDataset':
        return f'{ds.k} labelled object{"s" * (ds.k != 1)} per class' + \
            (' + image-depth pre-training' if pretrained else '')
    return 'every training object (contrastive, text + image)'


def split_signature(cfg: Config) -> tuple:
    """What "the same split and metric" means: the test set's data, split and filters, and the classes and
    prefixes of the test metrics."""
    test = cfg.test_dataloader.dataset
    keys = ('data_root', 'ann_file', 'split', 'split_ratio', 'split_by', 'split_seed', 'val_ratio',
            'min_points', 'min_box_side')
    metrics = tuple((str(ev.get('classes')), ev.get('prefix')) for ev in cfg.test_evaluator)
    return tuple(test.get(k) for k in keys) + metrics


def evaluate(cfg: Config, preds_file: str) -> dict:
    """Every metric of ``cfg.test_evaluator`` over the dumped predictions, keys prefixed as in a test run."""
    with open(preds_file, 'rb') as f:
        preds = pickle.load(f)
    out = {}
    for ev in cfg.test_evaluator:
        ev = ev.to_dict() if hasattr(ev, 'to_dict') else dict(ev)
        ev.pop('type')
        metric = ZeroShotAccuracy(**ev)
        metric.process(None, preds)
        out.update({f'{metric.prefix}/{k}': v for k, v in metric.compute_metrics(metric.results).items()})
        untrained = {r['clip_untrained'] for r in metric.results if r['unfittable'] is None}  # misses: no CLIP
        out['clip_untrained'] = untrained.pop() if len(untrained) == 1 else None  # None: mixed or unknown
    return out


def _cell(value) -> str:
    return '-' if value is None else f'{value:.1f}'


def table1(rows: dict, classes) -> str:
    """Table 1's layout: Method | Avg. (per-object accuracy) | one column per class, then ours beside it."""
    head = ['Method', 'Avg.'] + [c.replace('_', ' ').title() for c in classes] + \
        ['class mean (ours)', '37-class Avg. (ours)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for name, m in rows.items():
        cells = [name, _cell(m.get('zero_shot/overall_acc'))]
        cells += [_cell(m.get(f'zero_shot/acc_{c}')) for c in classes]
        cells += [_cell(m.get('zero_shot/class_mean_acc')), _cell(m.get('zero_shot37/overall_acc'))]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def table2(rows: dict) -> str:
    """Table 2's layout: Data balance | Image loss | GAF | Avg., one row per combination."""
    lines = ['| Data balance | Image loss | GAF | Avg. | config |', '| --- | --- | --- | --- | --- |']
    for key, switches in TABLE2.items():
        if key in rows:
            m, path = rows[key]
            marks = ['✓' if on else '' for on in switches]
            lines.append('| ' + ' | '.join(marks + [_cell(m.get('zero_shot/overall_acc')),
                                                    f'`{osp.basename(path)}`']) + ' |')
    return '\n'.join(lines) + '\n'


def depth_table(rows: dict) -> str:
    """The depth-map table: Method | training | Avg. | class mean | 37-class Avg. | config, one row per
    ``{name: (metrics or None, config path, training)}``; metrics None: the config does not exist."""
    lines = ['| Method | training | Avg. | class mean (ours) | 37-class Avg. (ours) | config |',
             '| --- | --- | --- | --- | --- | --- |']
    for name, (m, path, training) in rows.items():
        if m is None:
            cells = [name, '-', '-', '-', '-', f'no config (`{osp.basename(path)}`)']
        else:
            cells = [name, training, _cell(m.get('zero_shot/overall_acc')), _cell(m.get('zero_shot/class_mean_acc')),
                     _cell(m.get('zero_shot37/overall_acc')), f'`{osp.basename(path)}`']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def clip_caveat(rows: dict, num_classes: int) -> str:
    """The untrained-CLIP warning for the rows whose predictions say their CLIP was untrained ('' if none)."""
    names = [name for name, m in rows.items() if m is not None and m.get('clip_untrained')]
    if not names:
        return ''
    which = 'every row' if len(names) == sum(m is not None for m in rows.values()) else ', '.join(names)
    return (f'\n> **The CLIP is untrained** (random, seeded open_clip weights) in {which}: these numbers show '
            f'that the pipelines run end to end, not CLIP transfer; chance is {100 / num_classes:.1f} % over the '
            f'{num_classes} classes, and they are not comparable to the paper\'s.\n')


def protocol(cfg: Config) -> str:
    """Seed, split and class lists of a config: what the tables were measured under."""
    test = cfg.test_dataloader.dataset
    return (f'Protocol: {test.ann_file} under {test.data_root}, split {test.split_ratio:g} : '
            f'{1 - test.split_ratio:g} by {test.split_by} (seed {test.split_seed}), validation = '
            f'{test.val_ratio:g} of the training {test.split_by}s; filters min_points={test.min_points}, '
            f'min_box_side={test.min_box_side}; training seed {cfg.randomness.seed}; training vocabulary: every '
            f'class of the infos; zero-shot over {cfg.model.head.eval_classes} scores, Table 1 over '
            f'{cfg.test_evaluator[0].classes}. Avg. = per-object accuracy (the paper\'s).\n')


def main(argv=None):
    args = parse_args(argv)
    tables = [t for t in TABLES if t in args.tables]
    paths = {**DATASETS[args.data], **DEPTH[args.data]}
    names = table_rows(args.data, tables)
    unknown = sorted(set(args.rows or ()) - set(names))
    if unknown:
        raise SystemExit(f'unknown rows {unknown} for tables {tables}; the rows: {names}')
    names = [r for r in names if args.rows is None or r in args.rows]
    pretrained = [args.pretrained_depth and osp.relpath(osp.abspath(args.pretrained_depth), ROOT)]

    def pretrained_depth() -> str:
        """CLIP2Point's pre-training checkpoint: given, or its config trained (resumably) into the work root."""
        if pretrained[0] is None:
            cfg_path = PRETRAIN[args.data]
            cfg = Config.fromfile(osp.join(ROOT, cfg_path))
            work_dir = osp.join(args.work_root, args.data, osp.splitext(osp.basename(cfg_path))[0])
            if has_step(cfg, 'LoadCLIPImageEmbedding'):
                run([EXTRACT, cfg_path, '--allow-failures', '0.05'])
            run([TRAIN, cfg_path, '--work-dir', work_dir, '--resume'])
            with open(osp.join(work_dir, 'last_checkpoint')) as f:
                pretrained[0] = f.read().strip()
        if not osp.isfile(osp.join(ROOT, pretrained[0])):
            raise FileNotFoundError(f'CLIP2Point pre-training checkpoint {pretrained[0]} does not exist')
        return pretrained[0]

    results = {}
    for row in names:
        cfg_path = paths[row]
        if not osp.isfile(osp.join(ROOT, cfg_path)):
            print(f'{row}: no config {cfg_path} for {args.data}', flush=True)
            results[row] = (None, cfg_path, None)
            continue
        cfg = Config.fromfile(osp.join(ROOT, cfg_path))
        work_dir = osp.join(args.work_root, args.data, osp.splitext(osp.basename(cfg_path))[0])
        splits = fitting_splits(cfg)
        if splits:
            # A few unfittable objects do not stop the tables: they are recorded, dropped from training and
            # scored as misses in testing (the protocol line counts them). More than 5% stops here.
            run([FIT, cfg_path, '--splits', *splits, '--allow-failures', '0.05'])
        option = depth_checkpoint_option(cfg)
        options = ['--cfg-options', f'{option}={pretrained_depth()}'] if option else []
        if cfg.get('training_free', False):
            ckpt = []  # tested with its own weights (frozen CLIP, the init_cfg's pre-trained encoder)
        else:
            run([TRAIN, cfg_path, '--work-dir', work_dir, '--resume', *options])
            with open(osp.join(work_dir, 'last_checkpoint')) as f:
                ckpt = [f.read().strip()]
        preds = osp.join(work_dir, 'predictions.pkl')
        run([TEST, cfg_path, *ckpt, '--work-dir', work_dir, '--out', preds, *options])
        results[row] = (evaluate(cfg, preds), cfg_path, training_of(cfg))
    main_cfg = Config.fromfile(osp.join(ROOT, DATASETS[args.data]['GS-CLIP']))
    classes = resolve_classes(main_cfg.test_evaluator[0].classes)
    metrics = {k: m for k, (m, _, _) in results.items()}
    sections = []
    if '1' in tables:
        t1 = {k: metrics[k] for k in results if k in DATASETS[args.data] and not k.startswith('tab2-')}
        sections.append(f'## Table 1 ({args.data})\n\n{table1(t1, classes)}{clip_caveat(t1, len(classes))}')
    if '2' in tables:
        t2 = {k: (m, path) for k, (m, path, _) in results.items() if k in TABLE2}
        caveat = clip_caveat({k: m for k, (m, _) in t2.items()}, len(classes))
        sections.append(f'## Table 2 ({args.data})\n\n{table2(t2)}{caveat}')
    if 'depth' in tables:
        rows = {k: v for k, v in results.items() if k in DEPTH_BESIDE or k in DEPTH[args.data]}
        same = split_signature(main_cfg)
        other = [k for k, (m, path, _) in rows.items()
                 if m is not None and split_signature(Config.fromfile(osp.join(ROOT, path))) != same]
        note = f'\nWARNING: not GS-CLIP\'s test split or metric: {", ".join(other)}\n' if other else ''
        if pretrained[0] is not None:
            note += f'\nCLIP2Point\'s pre-trained depth encoder: `{pretrained[0]}`.\n'
        sections.append(f'## Depth-map family vs GS-CLIP ({args.data})\n\n{depth_table(rows)}'
                        f'{clip_caveat({k: v[0] for k, v in rows.items()}, len(classes))}{note}')
    text = '\n'.join(sections) + '\n' + protocol(main_cfg)
    print(text)
    default = 'results.md' if tables == list(TABLES) else f'results_{"-".join(tables)}.md'
    out = args.out or osp.join(args.work_root, args.data, default)
    atomic_write(out, text.encode())
    print(f'tables written to {out}')
    return results


if __name__ == '__main__':
    main()
