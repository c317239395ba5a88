"""ZeroShotAccuracy on hand-made predictions with known per-class / mean / top-k values."""
import logging
import math

import mmengine
import numpy as np
import pytest
import torch
from mmengine.evaluator import DumpResults, Evaluator

from gsclip_mm.datasets import SUNRGBDObjectDataset
from gsclip_mm.datasets.collate import gsclip_collate
from gsclip_mm.evaluation.metrics import zero_shot
from gsclip_mm.models.classifiers.base import with_misses
from gsclip_mm.registry import METRICS
from gsclip_mm.structures import GSCLIPDataSample

VOCAB = ('bed', 'chair', 'night_stand')


def test_calculate_by_hand():
    scores = torch.tensor([
        [0.9, 0.1, 0.0],  # gt 0, rank 0
        [0.2, 0.5, 0.3],  # gt 0, rank 2
        [0.1, 0.8, 0.1],  # gt 1, rank 0
        [0.3, 0.2, 0.5],  # gt 1, rank 2
        [0.4, 0.3, 0.1],  # gt 1, rank 1
        [0.0, 0.0, 1.0],  # gt 2, rank 0
    ])
    gt = [0, 0, 1, 1, 1, 2]
    out = zero_shot.ZeroShotAccuracy.calculate(scores, gt, topk=(1, 2, 5))
    np.testing.assert_allclose(out['per_class'], [1 / 2, 1 / 3, 1.0])
    assert out['mean'] == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    assert out['overall'] == pytest.approx(3 / 6)
    assert out['top1'] == pytest.approx(3 / 6)
    assert out['top2'] == pytest.approx(4 / 6)
    assert out['top5'] == pytest.approx(1.0)  # k capped at 3 classes
    assert out['count'].tolist() == [2, 3, 1]


def test_calculate_class_without_samples_is_nan_and_left_out_of_mean():
    out = zero_shot.ZeroShotAccuracy.calculate(torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), [0, 1])
    assert out['per_class'][0] == 1.0 and out['per_class'][1] == 0.0 and math.isnan(out['per_class'][2])
    assert out['mean'] == pytest.approx(0.5)


def predictions(rows, untrained=True):
    """``rows``: (class_name, scores over VOCAB) -> dicts as MMEngine's Evaluator hands them over."""
    out = []
    for name, s in rows:
        ds = GSCLIPDataSample(metainfo=dict(class_name=name, score_classes=VOCAB, clip_untrained=untrained,
                                            clip_model='GSCLIP-Tiny-64|random(seed=0)'))
        ds.set_pred_score(torch.tensor(s))
        out.append(ds)
    return out


ROWS = [
    ('bed', [0.9, 0.1, 0.0]),
    ('bed', [0.3, 0.5, 0.2]),  # rank 1: a top-2 hit
    ('chair', [0.1, 0.8, 0.1]),
    ('chair', [0.3, 0.2, 0.5]),
    ('night stand', [0.1, 0.0, 0.9]),  # a differently spelt class name still matches night_stand
    ('lamp', [0.5, 0.5, 0.5]),  # not in the vocabulary: skipped and counted
]


def test_evaluator_end_to_end_with_table(monkeypatch):
    logged = []
    monkeypatch.setattr(zero_shot, 'print_log', lambda msg, **kw: logged.append(msg))
    evaluator = Evaluator(METRICS.build(dict(type='ZeroShotAccuracy', topk=(1, 2))))
    evaluator.process(data_samples=predictions(ROWS))
    res = evaluator.evaluate(len(ROWS))
    assert res['zero_shot/class_mean_acc'] == pytest.approx(100 * (0.5 + 0.5 + 1) / 3)
    assert res['zero_shot/overall_acc'] == pytest.approx(100 * 3 / 5)
    assert 'zero_shot/mean_acc' not in res  # no ambiguous name
    assert res['zero_shot/top2_acc'] == pytest.approx(100 * 4 / 5)
    assert res['zero_shot/acc_night_stand'] == pytest.approx(100.0)
    table = logged[0]
    # The paper's "Avg." is the per-object accuracy (its GS-CLIP columns average 65.2, its Avg. is 69.4)
    assert '| Method | Avg. | Class mean | Bed | Chair | Night Stand |' in table
    assert '| GS-CLIP | 60.0 | 66.7 | 50.0 | 50.0 | 100.0 |' in table
    assert 'Avg. = overall (per-object) accuracy' in table
    assert '1 skipped' in table and 'UNTRAINED' in table and 'bed, chair, night_stand' in table


def test_class_subset_restricts_columns_and_objects(monkeypatch):
    monkeypatch.setattr(zero_shot, 'print_log', lambda msg, **kw: None)
    metric = METRICS.build(dict(type='ZeroShotAccuracy', classes=['chair', 'night_stand']))
    metric.process(None, [d.to_dict() for d in predictions(ROWS, untrained=False)])
    res = metric.compute_metrics(metric.results)
    # chair rows: [0.8, 0.1] right; [0.2, 0.5] wrong. night stand: [0.0, 0.9] right. beds and the lamp skipped.
    assert res['acc_chair'] == pytest.approx(50.0) and res['acc_night_stand'] == pytest.approx(100.0)
    assert res['class_mean_acc'] == pytest.approx(75.0) and res['overall_acc'] == pytest.approx(100 * 2 / 3)
    assert res['top5_acc'] == pytest.approx(100.0) and 'acc_bed' not in res


def test_bad_configuration_is_named():
    metric = METRICS.build(dict(type='ZeroShotAccuracy', classes=['sofa']))
    metric.process(None, predictions(ROWS[:1]))
    with pytest.raises(ValueError, match=r"\['sofa'\] are not in the evaluation vocabulary"):
        metric.compute_metrics(metric.results)
    with pytest.raises(KeyError, match='score_classes'):
        METRICS.build(dict(type='ZeroShotAccuracy')).process(None, [dict(pred_score=torch.zeros(3), class_name='bed')])
    with pytest.raises(KeyError, match='ground-truth class'):
        METRICS.build(dict(type='ZeroShotAccuracy')).process(None, [dict(pred_score=torch.zeros(3))])


def test_gt_label_is_mapped_through_the_dataset_classes_by_name(monkeypatch):
    monkeypatch.setattr(zero_shot, 'print_log', lambda msg, **kw: None)
    metric = METRICS.build(dict(type='ZeroShotAccuracy'))
    # the dataset's class order differs from the vocabulary's: label 0 is night_stand here
    metric.dataset_meta = dict(classes=('night_stand', 'bed'))
    preds = [dict(pred_score=torch.tensor([0.1, 0.2, 0.9]), gt_label=torch.tensor([0]), score_classes=VOCAB),
             dict(pred_score=torch.tensor([0.1, 0.2, 0.9]), gt_label=torch.tensor([1]), score_classes=VOCAB)]
    metric.process(None, preds)
    res = metric.compute_metrics(metric.results)
    assert res['acc_night_stand'] == 100.0 and res['acc_bed'] == 0.0 and res['class_mean_acc'] == 50.0


# ------------------------------------------------ ties, non-finite rows, unfittable objects
NAN, INF = float('nan'), float('inf')


def test_non_finite_rows_are_misses_at_every_k():
    scores = torch.tensor([
        [NAN, 0.0, 0.0],  # gt 1: nothing beats the true class "strictly", yet the model diverged
        [0.1, NAN, 0.2],  # gt 1: the true class itself is NaN
        [INF, 0.0, 0.0],  # gt 0: +inf "wins"
        [-INF, 0.5, 0.1],  # gt 1: a -inf elsewhere
        [0.2, 0.9, 0.1],  # gt 1: the one real hit
    ])
    out = zero_shot.ZeroShotAccuracy.calculate(scores, [1, 1, 0, 1, 1], topk=(1, 3))
    np.testing.assert_allclose(out['per_class'][:2], [0.0, 1 / 4])
    assert out['overall'] == pytest.approx(1 / 5) and out['top3'] == pytest.approx(1 / 5)
    assert out['num_nonfinite'] == 4
    assert zero_shot.top1_labels(scores).tolist() == [-1, -1, -1, -1, 1]


def test_ties_go_to_the_first_class_like_argmax():
    scores = torch.tensor([[0.5, 0.5, 0.5]] * 3 + [[0.2, 0.7, 0.7]] * 2)
    gt = [0, 1, 2, 1, 2]
    out = zero_shot.ZeroShotAccuracy.calculate(scores, gt, topk=(1, 2, 3))
    # fully tied rows predict class 0; [0.2, 0.7, 0.7] predicts class 1 and ranks class 2 second
    np.testing.assert_allclose(out['per_class'], [1.0, 1 / 2, 0.0])
    assert out['top2'] == pytest.approx(4 / 5) and out['top3'] == pytest.approx(1.0)
    assert zero_shot.true_class_ranks(scores.double(), torch.tensor(gt)).tolist() == [0, 1, 2, 0, 1]
    assert zero_shot.top1_labels(scores).tolist() == [0, 0, 0, 1, 1]


def test_constant_predictor_scores_as_always_class_0():
    gt = torch.arange(10).repeat_interleave(2)  # 2 objects of each of 10 classes
    out = zero_shot.ZeroShotAccuracy.calculate(torch.zeros(20, 10), gt, topk=(1, 5))
    assert out['per_class'].tolist() == [1.0] + [0.0] * 9
    assert out['overall'] == pytest.approx(0.1) and out['mean'] == pytest.approx(0.1)
    assert out['top5'] == pytest.approx(0.5)  # classes 0..4 are the first five of the stable order


def test_label_and_rank_agree_with_a_stable_sort_and_cpu_argmax():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (200, 6), generator=g).double()  # many ties
    scores[torch.rand(200, generator=g) < 0.1, 2] = NAN
    gt = torch.randint(0, 6, (200, ), generator=g)
    rank, label = zero_shot.true_class_ranks(scores, gt), zero_shot.top1_labels(scores)
    finite = torch.isfinite(scores).all(dim=1)
    assert 0 < int((~finite).sum()) < 200
    assert torch.equal(rank == 0, label == gt)  # pred_label == gt exactly when the metric counts a hit
    order = torch.sort(scores[finite], dim=1, descending=True, stable=True).indices  # [F, 6]
    assert torch.equal(rank[finite], (order == gt[finite, None]).int().argmax(dim=1))
    assert torch.equal(label[finite], scores[finite].argmax(dim=1))
    assert (rank[~finite] == 6).all() and (label[~finite] == -1).all()


def unfittable_prediction(name, reason, scores=(NAN, NAN, NAN)):
    ds = predictions([(name, list(scores))])[0]
    ds.set_metainfo(dict(unfittable=reason))
    ds.pred_label = torch.tensor([-1])
    return ds


def assert_the_eight_object_case(res, logged):
    """The scores and log of the 8-object case (3 scored, 1 NaN, 4 misses, 1 tie), by hand: bed 1 of 2 (the NaN
    row is a miss), chair 1 of 3, night stand 0 of 3 (the tie predicts bed); overall and top-2 2 of 8 (the tie
    ranks night stand third)."""
    assert res['zero_shot/acc_bed'] == pytest.approx(50.0)
    assert res['zero_shot/acc_chair'] == pytest.approx(100 / 3)
    assert res['zero_shot/acc_night_stand'] == pytest.approx(0.0)
    assert res['zero_shot/class_mean_acc'] == pytest.approx((50 + 100 / 3 + 0) / 3)
    assert res['zero_shot/overall_acc'] == pytest.approx(100 * 2 / 8)
    assert res['zero_shot/top2_acc'] == pytest.approx(100 * 2 / 8)
    assert res['zero_shot/num_nonfinite'] == 1 and res['zero_shot/num_unfittable'] == 4
    (msg, level), = logged
    assert level == logging.WARNING
    assert 'WARNING: 1 of 8 predictions have non-finite scores (model diverged?): counted as wrong' in msg
    assert ('WARNING: 4 of 8 test objects were unfittable (no Gaussians; reasons: no points in box (2); '
            'image not found (1); fit diverged (1)) and count as wrong') in msg
    assert '| #objects | 8 |  | 2 | 3 | 3 |' in msg
    return msg


def test_unfittable_and_diverged_rows_are_counted_and_logged(monkeypatch):
    logged = []
    monkeypatch.setattr(zero_shot, 'print_log', lambda msg, **kw: logged.append((msg, kw.get('level'))))
    preds = predictions([('bed', [0.9, 0.1, 0.0]), ('bed', [NAN, 0.1, 0.0]), ('chair', [0.1, 0.8, 0.1])])
    preds += [unfittable_prediction('chair', 'no points in box'),
              unfittable_prediction('night_stand', 'no points in box'),
              unfittable_prediction('night_stand', 'image not found'),
              unfittable_prediction('chair', 'fit diverged', scores=(0.0, 1.0, 0.0))]  # a miss whatever it holds
    preds += predictions([('night_stand', [0.2, 0.2, 0.2])])  # a tie: predicts bed
    evaluator = Evaluator(METRICS.build(dict(type='ZeroShotAccuracy', topk=(1, 2))))
    evaluator.process(data_samples=preds)
    res = evaluator.evaluate(len(preds))
    assert_the_eight_object_case(res, logged)


def test_clean_run_logs_no_warning_and_reasons_are_capped(monkeypatch):
    logged = []
    monkeypatch.setattr(zero_shot, 'print_log', lambda msg, **kw: logged.append((msg, kw.get('level'))))
    metric = METRICS.build(dict(type='ZeroShotAccuracy'))
    metric.process(None, predictions(ROWS[:3]))
    res = metric.compute_metrics(metric.results)
    assert res['num_nonfinite'] == 0 and res['num_unfittable'] == 0
    assert logged[0][1] == logging.INFO and 'WARNING' not in logged[0][0]
    metric = METRICS.build(dict(type='ZeroShotAccuracy'))
    metric.process(None, [unfittable_prediction('bed', f'reason {i}') for i in range(5)] + predictions(ROWS[:1]))
    assert metric.compute_metrics(metric.results)['num_unfittable'] == 5
    assert 'reasons: reason 0 (1); reason 1 (1); reason 2 (1); 2 more reasons) and count as wrong' in logged[-1][0]


# ------------------------------------------------ recorded misses, collated beside the batch and put back
def packed(name, scores=None, reason=None, idx=0):
    """One object as the dataset yields it: with inputs (its data sample already holds the prediction the
    stand-in model returns), or a recorded miss (no inputs)."""
    if reason is not None:
        return SUNRGBDObjectDataset.miss_sample(dict(class_name=name, sample_idx=idx, gt_label=0), reason)
    ds, = predictions([(name, scores)])
    ds.set_metainfo(dict(sample_idx=idx))
    return dict(inputs=dict(gaussians=torch.zeros(1, 14)), data_samples=ds)


def run_batches(metrics, batches):
    """What MMEngine's test loop does per batch: collate, ``test_step`` (here a stand-in model whose data
    samples already hold their predictions: the batch's data samples, the misses put back in order), and
    every metric processes the outputs."""
    evaluator = Evaluator(metrics)
    for objects in batches:
        data_batch = gsclip_collate(objects)
        evaluator.process(data_samples=with_misses(data_batch['data_samples'], data_batch), data_batch=data_batch)


# The case of test_unfittable_and_diverged_rows_are_counted_and_logged, packed by the dataset: 8 objects in
# batches of 3, the 4 misses (one batch holds misses only) collated beside the model's batch.
OBJECTS = [packed('bed', [0.9, 0.1, 0.0]), packed('bed', [NAN, 0.1, 0.0]), packed('chair', [0.1, 0.8, 0.1]),
           packed('chair', reason='no points in box'), packed('night_stand', reason='no points in box'),
           packed('night_stand', reason='image not found'),
           packed('chair', reason='fit diverged'), packed('night_stand', [0.2, 0.2, 0.2])]


def test_collated_misses_score_as_the_old_inline_ones(monkeypatch):
    logged = []
    monkeypatch.setattr(zero_shot, 'print_log', lambda msg, **kw: logged.append((msg, kw.get('level'))))
    metric = METRICS.build(dict(type='ZeroShotAccuracy', topk=(1, 2)))
    run_batches([metric], [OBJECTS[0:3], OBJECTS[3:6], OBJECTS[6:8]])
    assert len(metric.results) == 8 and [r['unfittable'] for r in metric.results][3:7] == [
        'no points in box', 'no points in box', 'image not found', 'fit diverged']
    res = metric.evaluate(8)
    msg = assert_the_eight_object_case(res, logged)
    assert 'CLIP: UNTRAINED' in msg  # the misses, never scored by a CLIP, do not blur the CLIP note


def test_misses_only_need_the_classes():
    metric = METRICS.build(dict(type='ZeroShotAccuracy', classes=VOCAB))
    run_batches([metric], [[packed('bed', reason='x'), packed('chair', reason='y')]])
    res = metric.compute_metrics(metric.results)
    assert res['overall_acc'] == 0.0 and res['num_unfittable'] == 2 and res['acc_bed'] == 0.0
    metric = METRICS.build(dict(type='ZeroShotAccuracy'))
    run_batches([metric], [[packed('bed', reason='x')]])
    with pytest.raises(ValueError, match='every object is a recorded miss.*give ZeroShotAccuracy its classes'):
        metric.compute_metrics(metric.results)


def test_the_dump_holds_every_object_in_order_and_scores_the_same(tmp_path):
    out = str(tmp_path / 'preds.pkl')
    metric = METRICS.build(dict(type='ZeroShotAccuracy', topk=(1, 2)))
    dump = DumpResults(out_file_path=out)  # what tools/test.py --out adds
    objects = [packed(ds.class_name, ds.pred_score.tolist() if 'pred_score' in ds else None, ds.get('unfittable'),
                      idx=i) for i, ds in enumerate(o['data_samples'] for o in OBJECTS)]
    run_batches([metric, dump], [objects[0:3], objects[3:6], objects[6:8]])
    expected = metric.evaluate(8)
    dump.evaluate(8)
    dumped = mmengine.load(out)
    assert [d['sample_idx'] for d in dumped] == list(range(8))  # every object, in order
    assert [d.get('unfittable') for d in dumped][3:7] == ['no points in box', 'no points in box',
                                                          'image not found', 'fit diverged']
    assert all('pred_score' not in d for d in dumped[3:7]) and all('pred_score' in d for d in dumped[:3])
    offline = METRICS.build(dict(type='ZeroShotAccuracy', topk=(1, 2)))
    offline.process(None, dumped)
    assert {f'zero_shot/{k}': v for k, v in offline.compute_metrics(offline.results).items()} == expected


def test_distributed_collection_keeps_a_rank_s_miss_before_its_padding():
    # 5 objects on 2 ranks, batch size 3: DefaultSampler(shuffle=False) pads to 6 and gives rank 0 objects
    # [0, 2, 4], rank 1 [1, 3, 0] (0 again: the padding). MMEngine's collect_results (cpu) interleaves the
    # ranks' results and cuts them to 5, so a rank's results must follow its batches' order: had object 1
    # (a miss) been put after its batch's predictions, the cut would drop it and keep the padded duplicate.
    objects = [packed('bed', [1.0, 0.0, 0.0]), packed('chair', reason='no points in box'),
               packed('chair', [0.0, 1.0, 0.0]), packed('night_stand', [0.0, 0.0, 1.0]),
               packed('bed', [0.0, 1.0, 0.0])]
    parts = []
    for rank_indices in ([0, 2, 4], [1, 3, 0]):
        metric = METRICS.build(dict(type='ZeroShotAccuracy'))
        run_batches([metric], [[objects[i] for i in rank_indices]])
        parts.append(metric.results)
    collected = [r for res in zip(*parts) for r in res][:5]  # mmengine.dist.collect_results_cpu's order
    assert [r['class_name'] for r in collected] == ['bed', 'chair', 'chair', 'night_stand', 'bed']
    res = METRICS.build(dict(type='ZeroShotAccuracy')).compute_metrics(collected)
    assert res['num_unfittable'] == 1 and res['overall_acc'] == pytest.approx(100 * 3 / 5)
