"""Zero-shot classification accuracy, reported like the paper's Table 1.

The predicted label is the *first* maximal score (what ``torch.argmax``
returns on a CPU), and a row with any non-finite score predicts nothing
(``NO_PREDICTION``): ``top1_labels`` in ``gsclip_mm.structures``, which
``GSCLIPDataSample.set_pred_score`` applies. The metric ranks the true class
the same way, so ``pred_label == gt`` exactly when it counts a top-1 hit.

"Unfittable" lives here and in the dataset only: a test object the dataset
could not use (no Gaussians, an unreadable image) stays in the test set as a
*recorded miss*, a data sample with metainfo ``unfittable`` (the reason), no
inputs and no prediction. ``gsclip_collate`` keeps misses beside the model's
batch and ``GSCLIPBaseModel.test_step`` puts them back among the predictions,
in batch order, so :meth:`ZeroShotAccuracy.process` (and a ``DumpResults``
dump) sees every object, and scores each miss as wrong.
"""
import logging
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from gsclip_mm.registry import METRICS
from gsclip_mm.structures.categories import resolve_classes
from gsclip_mm.structures.data_sample import NO_PREDICTION, top1_labels  # noqa: F401  (the shared rule)
from gsclip_mm.utils import readable_class_name


def true_class_ranks(scores: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """0-based rank of each row's true class under ``top1_labels``' rule.

    Rank = classes scoring strictly higher + classes scoring equal with a lower
    index (the true class's position in a stable descending sort), so rank 0
    is exactly ``top1_labels(scores) == gt``. A row with any non-finite score
    gets rank ``C``: a miss at every k.

    Args:
        scores: ``[N, C]``; gt: ``[N]`` long column indices.

    Returns:
        ``[N]`` long in ``[0, C]``.
    """
    n, c = scores.shape
    true = scores.gather(1, gt.view(-1, 1))  # [N, 1]
    idx = torch.arange(c, device=scores.device).view(1, -1)  # [1, C]
    rank = (scores > true).sum(dim=1) + ((scores == true) & (idx < gt.view(-1, 1))).sum(dim=1)  # [N]
    return torch.where(torch.isfinite(scores).all(dim=1), rank, torch.full_like(rank, c))


def _title(name: str) -> str:
    return ' '.join(w.capitalize() for w in readable_class_name(name).split())


def select_subset(results: Sequence[dict], classes: Optional[Sequence[str]]
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, List[str], List[dict]]:
    """The objects and score columns of a class subset, matched by readable class name.

    Args:
        results: ``ZeroShotAccuracy.results``: per object ``pred_score`` ``[C]``, ``class_name``,
            ``score_classes`` (the C names) and ``unfittable``; a recorded miss (``unfittable`` set) has no
            ``pred_score`` nor ``score_classes``.
        classes: the subset's names (resolved), or None for the whole vocabulary.

    Returns:
        ``scores`` ``[N, C']`` float64 (the subset's columns, raw; NaN rows for the misses), ``gt`` ``[N]``
        long (index into the subset), ``unfit`` ``[N]`` bool, the subset's names, and the N kept results
        (objects of the subset).
    """
    vocab = scored_vocabulary(results, classes)
    vocab_norm = [readable_class_name(c) for c in vocab]
    subset = list(classes) if classes is not None else list(vocab)
    missing = [c for c in subset if readable_class_name(c) not in vocab_norm]
    if missing:
        raise ValueError(f'classes {missing} are not in the evaluation vocabulary {list(vocab)}')
    cols = [vocab_norm.index(readable_class_name(c)) for c in subset]  # subset -> score columns
    subset_norm = [readable_class_name(c) for c in subset]
    keep = [r for r in results if readable_class_name(r['class_name']) in subset_norm]
    if not keep:
        raise ValueError(f'no prediction has a ground-truth class in {subset}')
    miss_row = torch.full((len(vocab), ), float('nan'))
    scores = torch.stack([miss_row if r['pred_score'] is None else r['pred_score'] for r in keep])  # [N, C]
    scores = scores[:, cols].double()  # [N, C']
    unfit = torch.tensor([r.get('unfittable') is not None for r in keep])  # [N]
    gt = torch.tensor([subset_norm.index(readable_class_name(r['class_name'])) for r in keep])  # [N]
    return scores, gt, unfit, subset, keep


def scored_vocabulary(results: Sequence[dict], classes: Optional[Sequence[str]] = None) -> tuple:
    """The one vocabulary (``score_classes``) of the predictions; with only misses, ``classes``."""
    vocabs = {r['score_classes'] for r in results if r['score_classes'] is not None}
    if len(vocabs) > 1:
        raise ValueError('predictions were scored over different vocabularies')
    if vocabs:
        return vocabs.pop()
    if classes is None:
        raise ValueError('every object is a recorded miss, so no prediction names the evaluation vocabulary: '
                         'give ZeroShotAccuracy its classes')
    return tuple(classes)


@METRICS.register_module()
class ZeroShotAccuracy(BaseMetric):
    """Per-class, mean-class ("Avg"), overall and top-k zero-shot accuracy.

    Protocol: each object's ``pred_score`` holds its 3D embedding's cosine
    similarity to the text embedding of every class of the evaluation
    vocabulary (``score_classes`` metainfo, set by ``FrozenCLIPHead.predict``).
    The ground truth is matched **by class name** (the dataset's
    ``class_name``), not by ``gt_label``, because the dataset's class list and
    the vocabulary may differ. With ``classes`` given, only those vocabulary
    columns compete (argmax over the subset) and only objects of those classes
    count; objects whose class is outside are skipped and counted in the log.
    A class with no test object is shown as ``-`` and left out of the mean.

    Ties go to the lowest column index (as ``pred_label``; see
    :func:`true_class_ranks`). Two kinds of rows always count as wrong, at
    every k, and are counted and reported with a WARNING in the log:

    - a row with a non-finite (NaN, +-inf) score among the competing
      columns: the model diverged (``num_nonfinite``);
    - an object with metainfo ``unfittable`` (the dataset could not fit its
      Gaussians or load its data; it stays in the test set as a recorded
      miss, whatever its scores hold; a miss has none) (``num_unfittable``).

    Args:
        classes (str | Sequence[str] | None): the class subset, or a
            vocabulary name of :mod:`gsclip_mm.structures.categories` such as
            ``'sunrgbd10'`` (default: the whole vocabulary of the predictions).
        topk (Sequence[int]): accuracies reported as ``top{k}_acc``; k is
            capped at the number of classes. Default (1, 5).
        method_name (str): the row label of the logged table.
        collect_device, prefix: see ``BaseMetric``.

    The predictions that ``tools/test.py --out preds.pkl`` dumps (misses
    included) reproduce the table offline:
    ``m = ZeroShotAccuracy(); m.process(None, mmengine.load('preds.pkl'));
    m.compute_metrics(m.results)``.

    Returned keys (with the ``zero_shot/`` prefix), in percent:
    ``overall_acc`` (per-object accuracy: the paper's "Avg."),
    ``class_mean_acc`` (mean of the per-class accuracies), ``top5_acc``, and
    ``acc_<class>`` per class that has test objects; and two counts (objects,
    not percent): ``num_nonfinite`` and ``num_unfittable``.
    """
    default_prefix = 'zero_shot'

    def __init__(self,
                 classes: Optional[Sequence[str]] = None,
                 topk: Sequence[int] = (1, 5),
                 method_name: str = 'GS-CLIP',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.classes = resolve_classes(classes) if classes is not None else None
        self.topk = tuple(int(k) for k in topk)
        if not self.topk or min(self.topk) < 1:
            raise ValueError(f'topk must be positive integers, got {topk}')
        self.method_name = method_name

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep, per object, the CPU scores, its class name, the vocabulary and why it was unfittable (if so;
        then no scores)."""
        for ds in data_samples:
            get = ds.get if isinstance(ds, dict) else (lambda k, d=None, _ds=ds: _ds.get(k, d))
            meta = ds.get('metainfo', ds) if isinstance(ds, dict) else ds.metainfo
            reason = meta.get('unfittable')
            score = get('pred_score')
            if score is None and reason is None:
                raise KeyError('ZeroShotAccuracy needs pred_score in each prediction (GSCLIP predict mode), or '
                               'metainfo "unfittable" (the reason) on a recorded miss')
            self.results.append(dict(
                pred_score=None if reason is not None else torch.as_tensor(score).detach().float().cpu(),
                class_name=self._gt_class_name(meta.get('class_name'), get('gt_label')),
                score_classes=None if reason is not None else tuple(meta.get('score_classes') or self._no_vocab()),
                unfittable=reason,
                clip_untrained=meta.get('clip_untrained'),
                clip_model=meta.get('clip_model')))

    def _gt_class_name(self, class_name: Optional[str], gt_label) -> str:
        """The ground-truth class name; else ``gt_label`` looked up in the dataset's classes."""
        if class_name is not None:
            return class_name
        classes = (self.dataset_meta or {}).get('classes')
        if gt_label is None or classes is None:
            raise KeyError('a prediction has neither metainfo "class_name" nor (gt_label and the dataset\'s '
                           'classes): cannot tell its ground-truth class')
        return classes[int(torch.as_tensor(gt_label).reshape(-1)[0])]

    @staticmethod
    def _no_vocab():
        raise KeyError('prediction lacks metainfo "score_classes" (the vocabulary of pred_score, '
                       'set by FrozenCLIPHead.predict)')

    @staticmethod
    def calculate(scores: Union[torch.Tensor, np.ndarray], gt: Union[torch.Tensor, np.ndarray, Sequence[int]],
                  num_classes: Optional[int] = None, topk: Sequence[int] = (1, 5)) -> Dict[str, object]:
        """Accuracies of ``[N, C]`` scores against ``[N]`` column indices.

        Returns (fractions in [0, 1]):
            ``per_class``: ``[C]`` float array, NaN where a class has no sample;
            ``mean``: mean of the non-NaN per-class values; ``overall``: top-1
            over all samples; ``top{k}`` for each k (capped at C); ``count``:
            ``[C]`` samples per class; ``num_nonfinite``: rows with a
            non-finite score (each a miss at every k). A hit at k means the
            true class is among the first k of a stable descending sort (ties
            to the lower index, as ``pred_label``).
        """
        scores = torch.as_tensor(scores, dtype=torch.float64)
        gt = torch.as_tensor(gt, dtype=torch.long).reshape(-1)
        assert scores.ndim == 2 and scores.shape[0] == gt.shape[0], \
            f'scores must be [N, C] and gt [N], got {tuple(scores.shape)} and {tuple(gt.shape)}'
        n, c = scores.shape
        c = num_classes or c
        assert scores.shape[1] == c, f'scores have {scores.shape[1]} columns, expected {c}'
        assert n == 0 or (gt.min() >= 0 and gt.max() < c), f'gt out of range [0, {c})'
        rank = true_class_ranks(scores, gt)  # [N], C for non-finite rows
        hit1 = (rank == 0).double()
        count = torch.bincount(gt, minlength=c).double()  # [C]
        correct = torch.bincount(gt, weights=hit1, minlength=c)  # [C]
        per_class = torch.where(count > 0, correct / count.clamp(min=1), torch.full_like(count, float('nan')))
        valid = ~torch.isnan(per_class)
        out = dict(per_class=per_class.numpy(), count=count.long().numpy(),
                   mean=float(per_class[valid].mean()) if valid.any() else float('nan'),
                   overall=float(hit1.mean()) if n else float('nan'),
                   num_nonfinite=int((~torch.isfinite(scores).all(dim=1)).sum()))
        for k in topk:
            out[f'top{k}'] = float((rank < min(k, c)).double().mean()) if n else float('nan')
        return out

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Pure function of ``results`` (plus the table in the log)."""
        if not results:
            raise ValueError('ZeroShotAccuracy got no predictions')
        scores, gt, unfit, subset, keep = select_subset(results, self.classes)
        vocab = scored_vocabulary(results, self.classes)
        skipped = len(results) - len(keep)
        num_nonfinite = int((~torch.isfinite(scores).all(dim=1) & ~unfit).sum())  # the model's, not the data's
        scores[unfit] = float('nan')  # a recorded miss, whatever its row holds
        acc = self.calculate(scores, gt, topk=self.topk)

        metrics = dict(overall_acc=100 * acc['overall'], class_mean_acc=100 * acc['mean'])
        for k in self.topk:
            if k != 1:
                metrics[f'top{k}_acc'] = 100 * acc[f'top{k}']
        for name, value in zip(subset, acc['per_class']):
            if not np.isnan(value):
                metrics[f'acc_{readable_class_name(name).replace(" ", "_")}'] = 100 * float(value)
        metrics.update(num_nonfinite=num_nonfinite, num_unfittable=int(unfit.sum()))
        warnings = self._warnings(keep, num_nonfinite)
        print_log('\n'.join(warnings + [self._report(subset, acc, keep, skipped, len(vocab))]), logger='current',
                  level=logging.WARNING if warnings else logging.INFO)
        return metrics

    @staticmethod
    def _warnings(kept: List[dict], num_nonfinite: int) -> List[str]:
        """The protocol's WARNING lines: model-diverged rows and unfittable objects (both scored as misses)."""
        out = []
        if num_nonfinite:
            out.append(f'WARNING: {num_nonfinite} of {len(kept)} predictions have non-finite scores '
                       f'(model diverged?): counted as wrong')
        reasons = Counter(str(r['unfittable']) for r in kept if r.get('unfittable') is not None)
        if reasons:
            top = [f'{reason} ({n})' for reason, n in reasons.most_common(3)]
            if len(reasons) > 3:
                top.append(f'{len(reasons) - 3} more reasons')
            out.append(f'WARNING: {sum(reasons.values())} of {len(kept)} test objects were unfittable (no Gaussians; '
                       f'reasons: {"; ".join(top)}) and count as wrong')
        return out

    def _report(self, subset: List[str], acc: dict, kept: List[dict], skipped: int, vocab_size: int) -> str:
        """The paper's Table 1 layout (Method | Avg. | one column per class), the class mean beside it, and the
        protocol."""
        head = ['Method', 'Avg.', 'Class mean'] + [_title(c) for c in subset]
        cells = [self.method_name, f'{100 * acc["overall"]:.1f}', f'{100 * acc["mean"]:.1f}'] + \
                ['-' if np.isnan(v) else f'{100 * v:.1f}' for v in acc['per_class']]
        counts = ['#objects', str(int(sum(acc['count']))), ''] + [str(int(n)) for n in acc['count']]
        rows = [head, ['---'] * len(head), cells, counts]
        table = '\n'.join('| ' + ' | '.join(r) + ' |' for r in rows)
        scored = [r for r in kept if r.get('unfittable') is None]  # a miss was never scored by a CLIP
        untrained = {r['clip_untrained'] for r in scored}
        models = {r['clip_model'] for r in scored if r['clip_model']}
        if untrained == {True}:
            clip_note = 'CLIP: UNTRAINED (random, seeded open_clip weights): not comparable to the paper'
        elif untrained == {False}:
            clip_note = 'CLIP: pretrained weights'
        else:
            clip_note = 'CLIP: training state not recorded in the predictions'
        if models:
            clip_note += f' [{", ".join(sorted(models))}]'
        tops = ', '.join(f'top-{k} {100 * acc[f"top{k}"]:.1f}' for k in self.topk if k != 1)
        return (f'Zero-shot classification: top-1 of the cosine similarity between each 3D embedding and the '
                f'prompt-averaged CLIP text embedding of each class; {len(subset)} classes compete '
                f'(of a {vocab_size}-class vocabulary): {", ".join(subset)}. '
                f'{len(kept)} objects scored, {skipped} skipped (ground truth outside these classes). '
                f'Avg. = overall (per-object) accuracy, as in the paper\'s Table 1 (its GS-CLIP class columns '
                f'average 65.2, its Avg. is 69.4); Class mean = mean of per-class accuracies over classes with '
                f'objects. Ties go to the first class; '
                f'a non-finite score or an unfittable object is a miss. {clip_note}.\n'
                f'{table}' + (f'\n{tops}' if tops else ''))
