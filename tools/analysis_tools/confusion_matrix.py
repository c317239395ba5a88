"""Confusion-matrix PNG of a zero-shot test run, from ``tools/test.py --out`` predictions.

    python tools/test.py CONFIG CHECKPOINT --out work_dirs/preds.pkl
    python tools/analysis_tools/confusion_matrix.py work_dirs/preds.pkl --out work_dirs/confusion.png \
        [--classes sunrgbd10 | all | NAME ...] [--normalize] [--title TEXT]

The protocol is ``ZeroShotAccuracy``'s, so the diagonal holds exactly the
metric's top-1 hits: only the ``--classes`` columns of each ``pred_score``
compete (default ``sunrgbd10``, GS-CLIP's Table 1; ``all``: the predictions'
whole vocabulary, ``score_classes``), the true class is the object's
``class_name`` (objects of other classes are left out), the prediction is the
first maximal score, and an object with a non-finite score or recorded as
unfittable predicts nothing: it lands in an extra "(no prediction)" column,
added only when there is one. The matrix is mmpretrain's ``ConfusionMatrix``
(rows: true class, columns: predicted) and so is the picture
(``ConfusionMatrix.plot``). The tool also prints the matrix.

The predictions file is unpickled (it holds tensors): load only files you made.
"""
import argparse
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch

from gsclip_mm.evaluation.metrics.zero_shot import select_subset
from gsclip_mm.structures import top1_labels
from gsclip_mm.structures.categories import resolve_classes
from gsclip_mm.utils import readable_class_name

NO_PREDICTION_NAME = '(no prediction)'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Confusion-matrix PNG from tools/test.py --out predictions')
    parser.add_argument('predictions', help='the .pkl that tools/test.py --out wrote')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--classes', nargs='+', default=['sunrgbd10'],
                        help="a vocabulary name (sunrgbd10, sunrgbd37), 'all' (the predictions' vocabulary) or "
                        'class names: the classes that compete and are shown (default: sunrgbd10)')
    parser.add_argument('--normalize', action='store_true', help='show each row in percent of its objects')
    parser.add_argument('--title', default=None, help='figure title (default: the file name, accuracy, protocol)')
    return parser.parse_args(argv)


def subset_predictions(results: Sequence[dict],
                       classes: Optional[Sequence[str]]) -> Tuple[torch.Tensor, torch.Tensor, List[str]]:
    """Predicted and true labels over a class subset, by ``ZeroShotAccuracy``'s rules.

    Args:
        results: ``ZeroShotAccuracy.results`` (its ``process`` output): per object ``pred_score`` ``[C]``,
            ``class_name``, ``score_classes`` (the C names) and ``unfittable`` (a recorded miss: no scores).
        classes: the subset (names or a vocabulary name), or None for the whole vocabulary.

    Returns:
        ``pred`` ``[N]`` long (an index into the subset, or -1: no prediction), ``gt`` ``[N]`` long, and the
        subset's names; N counts the objects whose class is in the subset.
    """
    if not results:
        raise ValueError('no predictions')
    scores, gt, unfit, subset, _ = select_subset(results, resolve_classes(classes) if classes is not None else None)
    scores[unfit] = float('nan')  # recorded misses, as the metric counts them
    return top1_labels(scores), gt, subset


def confusion_matrix(pred: torch.Tensor, gt: torch.Tensor, num_classes: int) -> Tuple[torch.Tensor, bool]:
    """mmpretrain's ``ConfusionMatrix.calculate`` of ``[N]`` labels; -1 (no prediction) becomes an extra last
    class when present. Returns the ``[K, K]`` counts (rows: true, columns: predicted) and whether K = C + 1."""
    from mmpretrain.evaluation import ConfusionMatrix
    has_miss = bool((pred < 0).any())
    k = num_classes + int(has_miss)
    return ConfusionMatrix.calculate(torch.where(pred < 0, num_classes, pred), gt, num_classes=k), has_miss


def plot(matrix: torch.Tensor, names: Sequence[str], title: str, normalize: bool):
    """mmpretrain's ``ConfusionMatrix.plot`` of ``[K, K]`` counts (written in the cells; with ``normalize``, whole
    percent of each row), with a title; returns the figure."""
    import matplotlib
    matplotlib.use('Agg')
    from mmpretrain.evaluation import ConfusionMatrix
    shown = matrix.long()
    if normalize:  # whole percent of the row (the plot writes integers)
        rows = shown.sum(dim=1, keepdim=True)
        shown = torch.round(100 * shown.double() / rows.clamp(min=1)).long()
    fig = ConfusionMatrix.plot(shown, include_values=True, classes=[readable_class_name(n) for n in names],
                               show=False)
    fig.suptitle(title, fontsize=11)
    return fig


def describe(results: Sequence[dict], pred: torch.Tensor, gt: torch.Tensor, subset: Sequence[str], path: str) -> str:
    """The default title: file, accuracy, counts, and whether the CLIP was trained."""
    acc = 100 * float((pred == gt).double().mean())
    untrained = {r.get('clip_untrained') for r in results if r.get('unfittable') is None}  # misses: no CLIP
    note = ' (UNTRAINED CLIP)' if untrained == {True} else ''
    return (f'{osp.basename(path)}: zero-shot top-1 {acc:.1f}% on {len(gt)} objects, '
            f'{len(subset)} classes{note}; rows: true, columns: predicted')


def main(argv=None):
    args = parse_args(argv)
    import mmengine

    from gsclip_mm.evaluation import ZeroShotAccuracy
    metric = ZeroShotAccuracy()  # its process() reads every prediction layout tools/test.py dumps
    metric.process(None, mmengine.load(args.predictions))
    classes = None if args.classes == ['all'] else (args.classes[0] if len(args.classes) == 1 else args.classes)
    pred, gt, subset = subset_predictions(metric.results, classes)
    matrix, has_miss = confusion_matrix(pred, gt, len(subset))
    names = list(subset) + ([NO_PREDICTION_NAME] if has_miss else [])
    width = max(len(readable_class_name(n)) for n in names)
    print(f'confusion matrix (rows: true class, columns: predicted), {len(gt)} objects:')
    for name, row in zip(names, matrix.tolist()):
        print(f'  {readable_class_name(name):>{width}} ' + ' '.join(f'{v:4d}' for v in row))
    fig = plot(matrix, names, args.title or describe(metric.results, pred, gt, subset, args.predictions),
               args.normalize)
    mmengine.mkdir_or_exist(osp.dirname(osp.abspath(args.out)))
    fig.savefig(args.out, dpi=100, bbox_inches='tight')
    print(f'wrote {args.out}')
    return matrix


if __name__ == '__main__':
    main()
