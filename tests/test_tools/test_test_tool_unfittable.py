"""tools/test.py on a test set whose unfittable objects are recorded misses (CPU, tiny CLIP)."""
import math
import os.path as osp
import pickle

import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import save_checkpoint
from test_train_test import ROOT, run_tool

from gsclip_mm.evaluation.metrics.zero_shot import ZeroShotAccuracy
from gsclip_mm.registry import MODELS

CFG = osp.join(ROOT, 'tests', 'data', 'unfittable_config.py')


def test_unfittable_objects_count_as_misses_and_dump(tmp_path):
    import unfittable_components  # noqa: F401  (registers the toy backbone; tests/data is on sys.path)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CFG).model)
    ckpt = tmp_path / 'model.pth'
    save_checkpoint(model.state_dict(), str(ckpt))  # what tools/train.py saves: loads strictly

    out = tmp_path / 'preds.pkl'
    proc = run_tool([osp.join(ROOT, 'tools', 'test.py'), CFG, str(ckpt), '--work-dir', str(tmp_path), '--out',
                     str(out)], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]  # a miss is not an error
    assert ('WARNING: 4 of 7 test objects were unfittable (no Gaussians; reasons: no points in box (3); '
            'image not found (1)) and count as wrong') in log
    assert 'predictions have non-finite scores' not in log and 'do not match' not in log

    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert [p['sample_idx'] for p in preds] == list(range(7))  # every object, in order
    unfit = [p for p in preds if p.get('unfittable')]
    assert [p['sample_idx'] for p in unfit] == [1, 3, 4, 5]
    assert [p['unfittable'] for p in unfit] == ['no points in box', 'no points in box', 'image not found',
                                                'no points in box']
    # a miss never reached the model: its data sample (ground truth, reason), no prediction
    assert all('pred_score' not in p and 'pred_label' not in p and 'embedding' not in p for p in unfit)
    assert [p['gt_label'].tolist() for p in unfit] == [[1], [0], [1], [2]]
    fitted = [p for p in preds if not p.get('unfittable')]
    assert all(torch.isfinite(p['pred_score']).all() and p['embedding'].shape == (128, ) for p in fitted)

    # The dump reproduces the table offline, unfittable objects included as misses.
    metric = ZeroShotAccuracy(topk=(1, 2))
    metric.process(None, preds)
    res = metric.compute_metrics(metric.results)
    hits = sum(int(p['pred_label'].item() == p['gt_label'].item()) for p in fitted)
    assert res['num_unfittable'] == 4 and res['num_nonfinite'] == 0
    assert res['overall_acc'] == pytest.approx(100 * hits / 7)
    assert res['overall_acc'] <= 100 * 3 / 7 and not math.isnan(res['class_mean_acc'])
    assert f"zero_shot/overall_acc: {res['overall_acc']:.4f}" in log
