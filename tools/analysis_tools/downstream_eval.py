"""Downstream evaluation of frozen 3D features, as 3D pre-training papers report it: a linear probe on all the
training objects and k-shot linear probes (k objects per class), beside the zero-shot accuracy, for one or more
pre-trained models on the same objects.

    python tools/analysis_tools/downstream_eval.py \
        --model GS-CLIP configs/gsclip/gsclip_pointnet2-tiny-gaf_1xb32-cosine-20e_synthetic.py \
            work_dirs/gs/epoch_20.pth \
        --model 'CLIP^2 (PointNet++)' configs/gsclip/clip2_pointnet2-tiny_1xb32-cosine-20e_synthetic.py \
            work_dirs/clip2/epoch_20.pth \
        [--model 'random init' CONFIG none] [--shots 1 2 4 8 16] [--trials 10] [--classes sunrgbd10] \
        [--weight-decay 1e-4 1e-3 1e-2 1e-1 1] [--folds 5] [--out work_dirs/downstream.md]

Protocol (printed with the table). Each model is built from its config and loads its checkpoint strictly
(``none``: the config's random init, seeded). Features: the model's 3D embedding, L2-normalised (what the
zero-shot scores compare with the CLIP text embeddings), of every object of the config's ``train`` and ``test``
splits, both read with the test pipeline (no augmentation; no class balancing). Only objects of ``--classes``
count. A classifier is multinomial logistic regression on the frozen features standardised by its own training
set's per-dimension mean and deviation (so one L2 penalty suits every encoder: a random encoder's embeddings
differ from each other far less than a trained one's), fitted by full-batch L-BFGS in float64 from zero weights
(a strictly convex problem: one answer). Its penalty ``weight_decay / 2 * |W|^2`` is chosen from
``--weight-decay`` by ``--folds``-fold cross-validation of the full probe on the training objects (the first
best; the test split is not looked at) and then used for every k. The k-shot training sets take
``min(k, n_c)`` objects of each class at random, ``--trials`` times (trial t draws with seed ``--seed + t``, the
same for every model on the same objects). A test object the dataset could not use (unfittable) is a miss, as
in the zero-shot metric; unusable training objects are left out. Reported: overall (per-object) accuracy, the
class mean, and for k-shot the mean and standard deviation over the trials.
"""
import argparse
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import DictAction

from gsclip_mm.evaluation import ZeroShotAccuracy
from gsclip_mm.structures.categories import resolve_classes
from gsclip_mm.utils import readable_class_name

SPLITS = ('train', 'test')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Linear probe and k-shot classification from frozen 3D features')
    parser.add_argument('--model', nargs=3, action='append', required=True, metavar=('NAME', 'CONFIG', 'CHECKPOINT'),
                        help="a table row: its name, config and checkpoint ('none': the config's random init); "
                        'repeat for each model')
    parser.add_argument('--shots', nargs='+', type=int, default=[1, 2, 4, 8, 16], help='objects per class')
    parser.add_argument('--trials', type=int, default=10, help='random draws per k')
    parser.add_argument('--seed', type=int, default=0, help='seed of the first draw (and of a random init)')
    parser.add_argument('--classes', default='sunrgbd10', help='vocabulary name or comma-separated class names')
    parser.add_argument('--weight-decay', nargs='+', type=float, default=[1e-4, 1e-3, 1e-2, 1e-1, 1.0],
                        help='L2 penalties (on standardised features) to choose from by cross-validation')
    parser.add_argument('--folds', type=int, default=5, help='cross-validation folds that choose the penalty')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--out', default=None, help='write the markdown table here too')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='applied to every config')
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------------ classifier
def fit_linear_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float,
                     max_iter: int = 500) -> Tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression: minimise ``CE(x W + b, y) + weight_decay / 2 * |W|^2``.

    Args:
        x: ``[N, D]`` features; y: ``[N]`` long labels in ``[0, num_classes)``.

    Returns:
        ``W`` ``[D, C]`` and ``b`` ``[C]``, float64 (L-BFGS with a strong Wolfe line search from zero).
    """
    assert x.ndim == 2 and y.shape == (x.shape[0], ), f'x must be [N, D] and y [N], got {x.shape}, {y.shape}'
    x = x.double()
    w = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20, tolerance_grad=1e-10,
                            tolerance_change=1e-14, line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + 0.5 * weight_decay * w.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def standardise(train_x: torch.Tensor, *others: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """``[N, D]`` training features and any others ``[M, D]``, centred and scaled by the training set's
    per-dimension mean and standard deviation (a constant dimension is only centred)."""
    mean = train_x.mean(dim=0)
    std = train_x.std(dim=0) if train_x.shape[0] > 1 else torch.ones_like(mean)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    return tuple((x - mean) / std for x in (train_x, *others))


def probe_accuracy(train: Tuple[torch.Tensor, torch.Tensor], test: Tuple[torch.Tensor, torch.Tensor],
                   num_classes: int, weight_decay: float) -> Dict[str, float]:
    """Fit on ``train = (x [N, D], y [N])`` (standardised, see :func:`standardise`), score ``test = (x [M, D],
    y [M])`` (a NaN row of x: a miss).

    Returns ``overall`` and ``mean`` (class mean) accuracy in percent, by ``ZeroShotAccuracy.calculate``'s
    rules (first maximal score; a non-finite row is wrong).
    """
    x_train, x_test = standardise(train[0].double(), test[0].double())
    w, b = fit_linear_probe(x_train, train[1], num_classes, weight_decay)
    scores = x_test @ w + b  # [M, C]; NaN rows stay NaN
    acc = ZeroShotAccuracy.calculate(scores, test[1], num_classes=num_classes, topk=(1, ))
    return dict(overall=100 * acc['overall'], mean=100 * acc['mean'])


def choose_weight_decay(train: Tuple[torch.Tensor, torch.Tensor], num_classes: int, weight_decays: Sequence[float],
                        folds: int, seed: int) -> float:
    """The penalty of ``weight_decays`` with the best mean overall accuracy over ``folds`` cross-validation folds
    of ``train`` (a seeded random assignment of the objects to folds); the first on a tie."""
    if len(weight_decays) == 1:
        return weight_decays[0]
    n = train[1].shape[0]
    fold = torch.empty(n, dtype=torch.long)
    fold[torch.from_numpy(np.random.default_rng(seed).permutation(n))] = torch.arange(n) % folds
    scores = []
    for wd in weight_decays:
        accs = [probe_accuracy((train[0][fold != f], train[1][fold != f]), (train[0][fold == f], train[1][fold == f]),
                               num_classes, wd)['overall'] for f in range(folds)]
        scores.append(float(np.mean(accs)))
    return weight_decays[int(np.argmax(scores))]


def sample_k_shot(y: torch.Tensor, k: int, num_classes: int, seed: int) -> torch.Tensor:
    """Indices of ``min(k, n_c)`` random objects of each class ``c`` of ``y`` ``[N]``, by class, sorted."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(num_classes):
        idx = torch.nonzero(y == c).flatten().numpy()
        picked.append(np.sort(rng.choice(idx, size=min(k, len(idx)), replace=False)) if len(idx) else idx)
    return torch.from_numpy(np.concatenate(picked)).long()


# ------------------------------------------------------------------------------------------ features
def build_model(config: str, checkpoint: str, seed: int, cfg_options: Optional[dict]):
    """The config's model in eval mode, with the checkpoint loaded strictly (``'none'``: seeded random init)."""
    from mmengine.runner import load_checkpoint

    from gsclip_mm.registry import MODELS
    from gsclip_mm.utils.config_utils import load_config
    cfg = load_config(config, cfg_options)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if checkpoint != 'none':
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return cfg, model.eval()


def split_loader(cfg, split: str, batch_size: int):
    """A loader over ``split``'s objects with the test pipeline, in test mode (unusable objects become misses)."""
    from mmengine.dataset import DefaultSampler
    from torch.utils.data import DataLoader

    from gsclip_mm.datasets import gsclip_collate
    from gsclip_mm.registry import DATASETS
    from gsclip_mm.utils.config_utils import split_dataset
    ds_cfg = split_dataset(cfg, split)
    if ds_cfg is None:
        return None
    if split != 'test':  # the same objects, read as the test split is: no augmentation, no image embeddings
        test_cfg = split_dataset(cfg, 'test')
        ds_cfg['pipeline'] = test_cfg['pipeline'] if test_cfg is not None else ds_cfg['pipeline']
    dataset = DATASETS.build(dict(ds_cfg, test_mode=True))
    return DataLoader(dataset, batch_size=batch_size, sampler=DefaultSampler(dataset, shuffle=False),
                      collate_fn=gsclip_collate, num_workers=0)


@torch.no_grad()
def extract(model, loader) -> List[dict]:
    """Per object: ``class_name``, ``embedding`` ``[D]`` (None when unusable) and the zero-shot prediction dict."""
    out = []
    for batch in loader:
        for ds in model.test_step(batch):  # every object in order; a recorded miss: its data sample, no embedding
            out.append(dict(class_name=ds.metainfo['class_name'],
                            embedding=ds.embedding.detach().cpu() if 'embedding' in ds else None,
                            prediction=ds.to_dict()))
    return out


def to_xy(objects: Sequence[dict], classes: Sequence[str], keep_misses: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """``x`` ``[N, D]`` float64 (NaN rows: unusable objects, kept only with ``keep_misses``) and ``y`` ``[N]`` of
    the objects whose class is in ``classes``."""
    names = [readable_class_name(c) for c in classes]
    dim = next(o['embedding'].shape[0] for o in objects if o['embedding'] is not None)
    xs, ys = [], []
    for o in objects:
        name = readable_class_name(o['class_name'])
        if name not in names or (o['embedding'] is None and not keep_misses):
            continue
        miss = torch.full((dim, ), float('nan'), dtype=torch.float64)
        xs.append(o['embedding'].double() if o['embedding'] is not None else miss)
        ys.append(names.index(name))
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long)


# ------------------------------------------------------------------------------------------ evaluation
def evaluate(features: Dict[str, List[dict]], classes: Sequence[str], shots: Sequence[int], trials: int, seed: int,
             weight_decays: Sequence[float], folds: int = 5) -> dict:
    """Zero-shot, linear-probe and k-shot results of one model from its per-split features (see :func:`extract`)."""
    c = len(classes)
    train, test = to_xy(features['train'], classes, False), to_xy(features['test'], classes, True)
    wd = choose_weight_decay(train, c, weight_decays, folds, seed)
    zero_shot = ZeroShotAccuracy(classes=list(classes), topk=(1, ))
    zero_shot.process(None, [o['prediction'] for o in features['test']])
    zs = zero_shot.compute_metrics(zero_shot.results)
    result = dict(weight_decay=wd, zero_shot=dict(overall=zs['overall_acc'], mean=zs['class_mean_acc']),
                  linear=probe_accuracy(train, test, c, wd),
                  counts=dict(train=len(train[1]), test=len(test[1])))  # training: usable; test: misses included
    for k in shots:
        runs = [probe_accuracy((train[0][i], train[1][i]), test, c, wd)
                for i in (sample_k_shot(train[1], k, c, seed + t) for t in range(trials))]
        result[f'{k}-shot'] = {m: (float(np.mean([r[m] for r in runs])), float(np.std([r[m] for r in runs])))
                               for m in ('overall', 'mean')}
    return result


def markdown(rows: Dict[str, dict], configs: Dict[str, str], classes: Sequence[str], shots: Sequence[int],
             trials: int) -> str:
    """The table (overall / class-mean accuracy, %; k-shot: mean +- std over the trials) and its protocol."""
    head = ['Method', 'config', 'zero-shot', 'linear probe'] + [f'{k}-shot' for k in shots] + ['L2 penalty']
    lines = ['| ' + ' | '.join(head) + ' |', '| ' + ' | '.join(['---'] * len(head)) + ' |']
    for name, r in rows.items():
        cells = [name, f'`{osp.basename(configs[name])}`',
                 f"{r['zero_shot']['overall']:.1f} / {r['zero_shot']['mean']:.1f}",
                 f"{r['linear']['overall']:.1f} / {r['linear']['mean']:.1f}"]
        cells += [f"{r[f'{k}-shot']['overall'][0]:.1f} ± {r[f'{k}-shot']['overall'][1]:.1f} / "
                  f"{r[f'{k}-shot']['mean'][0]:.1f}" for k in shots]
        lines.append('| ' + ' | '.join(cells + [f"{r['weight_decay']:g}"]) + ' |')
    counts = next(iter(rows.values()))['counts']
    return ('\n'.join(lines) + '\n\n' +
            f'Cells: overall (per-object) accuracy / class-mean accuracy, %, on the {counts["test"]} test objects of '
            f'{len(classes)} classes ({", ".join(classes)}); k-shot: mean ± std of the overall accuracy over {trials} '
            f'draws / mean class-mean accuracy. Training objects: {counts["train"]} (k-shot: min(k, n_c) per class). '
            f'Features: the frozen, L2-normalised 3D embedding, standardised; classifier: logistic regression '
            f'(L-BFGS), L2 penalty chosen by cross-validation on the training objects.')


def main(argv=None):
    args = parse_args(argv)
    classes = resolve_classes(args.classes if ',' not in args.classes else args.classes.split(','))
    rows, configs = {}, {}
    for name, config, checkpoint in args.model:
        cfg, model = build_model(config, checkpoint, args.seed, args.cfg_options)
        features = {}
        for split in SPLITS:
            loader = split_loader(cfg, split, args.batch_size)
            features[split] = extract(model, loader) if loader is not None else []
        rows[name] = evaluate(features, classes, args.shots, args.trials, args.seed, args.weight_decay,
                              args.folds)
        configs[name] = config
    table = markdown(rows, configs, classes, args.shots, args.trials)
    print(table)
    if args.out:
        from gsclip_mm.utils import atomic_write
        atomic_write(args.out, (table + '\n').encode())
    return rows


if __name__ == '__main__':
    main()
