"""The tools' layout (no tool imports another; the commands the orchestrating tools run exist) and
tools/analysis_tools: the synthetic set's preview and cue analysis, the results table."""
import ast
import glob
import importlib.util
import math
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from test_train_test import ROOT

TOOLS = osp.join(ROOT, 'tools')
H, W = 120, 160  # small images keep the tests fast


def load_tool(path):
    """A tool as a module, from its file (tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(path))[0], osp.join(TOOLS, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def imported_modules(path):
    """Top-level names of every module a Python file imports."""
    names = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names.update(a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split('.')[0])
    return names


def test_no_tool_imports_another():
    tools = glob.glob(osp.join(TOOLS, '**', '*.py'), recursive=True)
    names = {osp.splitext(osp.basename(t))[0] for t in tools}
    assert {'train', 'test', 'fit_gaussians', 'visualize_fit', 'make_synthetic_sunrgbd'} <= names
    for tool in tools:
        assert not imported_modules(tool) & names, tool
        assert 'sys.path' not in open(tool).read(), tool


def test_the_commands_of_demo_and_reproduce_tables_exist():
    demo = load_tool('demo.py')
    tables = load_tool('analysis_tools/reproduce_tables.py')
    assert tables.ROOT == demo.ROOT == ROOT
    for path in (demo.GENERATE, demo.FIT, demo.TRAIN, demo.TEST, tables.FIT, tables.TRAIN, tables.TEST,
                 *tables.SYNTHETIC):
        assert osp.isfile(osp.join(ROOT, path)), path


def test_has_fitting():
    has_fitting = load_tool('analysis_tools/reproduce_tables.py').has_fitting
    pipeline = [dict(type='LoadObjectPoints'), dict(type='gsclip_mm.FitGaussians', cache_dir='c')]
    wrapped = Config(dict(train_dataloader=dict(dataset=dict(type='RepeatDataset', times=2, dataset=dict(
        type='ClassBalancedDataset', dataset=dict(type='SUNRGBDObjectDataset', pipeline=pipeline))))))
    assert has_fitting(wrapped)  # found through both wrappers
    baseline = Config(dict(train_dataloader=dict(dataset=dict(type='SUNRGBDObjectDataset', pipeline=pipeline[:1]))))
    assert not has_fitting(baseline)


def test_results_tables_in_the_papers_layouts():
    tables = load_tool('analysis_tools/reproduce_tables.py')
    metrics = {'zero_shot/overall_acc': 87.64, 'zero_shot/class_mean_acc': 80.04, 'zero_shot/acc_bed': 50.0,
               'zero_shot/acc_night_stand': 75.0, 'zero_shot37/overall_acc': 61.25}
    head, rule, row = tables.table1({'GS-CLIP': metrics}, ['bed', 'chair', 'night_stand']).splitlines()
    assert head == '| Method | Avg. | Bed | Chair | Night Stand | class mean (ours) | 37-class Avg. (ours) |'
    assert rule == '|' + ' --- |' * 7
    # Avg. is the paper's per-object accuracy; a class without test objects is '-'
    assert row == '| GS-CLIP | 87.6 | 50.0 | - | 75.0 | 80.0 | 61.2 |'
    rows = {'tab2-balance': ({'zero_shot/overall_acc': 63.4}, 'configs/gsclip/a_tab2-balance.py'),
            'GS-CLIP': ({'zero_shot/overall_acc': 69.9}, 'configs/gsclip/a.py')}
    t2 = tables.table2(rows).splitlines()
    assert t2[0] == '| Data balance | Image loss | GAF | Avg. | config |'
    assert t2[2:] == ['| ✓ |  |  | 63.4 | `a_tab2-balance.py` |', '| ✓ | ✓ | ✓ | 69.9 | `a.py` |']
    # every row of both tables has its config, and Table 2's rows differ in exactly their switches
    for data, rows in tables.DATASETS.items():
        for path in rows.values():
            assert osp.isfile(osp.join(ROOT, path)), path
    assert sorted(tables.TABLE2.values()) == [(0, 0, 1), (0, 1, 0), (1, 0, 0), (1, 1, 0), (1, 1, 1)]


@pytest.fixture(scope='module')
def written(tmp_path_factory):
    """Six synthetic scenes, converted (one worker)."""
    out = str(tmp_path_factory.mktemp('syn'))
    load_tool('dataset_converters/make_synthetic_sunrgbd.py').main([
        '--out-dir', out, '--num-scenes', '6', '--seed', '3', '--height', str(H), '--width', str(W),
        '--min-points', '30', '--workers', '1'])
    return out


def test_preview_synthetic(written, tmp_path):
    preview = load_tool('analysis_tools/preview_synthetic.py')
    out = str(tmp_path / 'grid.png')
    grid = preview.main([written, '--out', out])
    with open(osp.join(written, 'sunrgbd_infos_trainval.pkl'), 'rb') as f:
        infos = pickle.load(f)['data_list']
    counts = np.bincount([i['bbox_label_3d'] for info in infos for i in info['instances']], minlength=37)
    tiles = int(np.minimum(counts, 2).sum())  # up to 2 crops per class (of the 37)
    per_row = 3 * W // 120  # 120-pixel crops in rows as wide as three scenes
    # 6 scenes: two rows of three scene images, then the rows of crops
    assert grid.shape == (2 * H + math.ceil(tiles / per_row) * 120, 3 * W, 3)
    assert np.array_equal(cv2.imread(out), grid)  # the PNG holds exactly the returned grid


def test_class_mean_accuracy_weighs_classes_equally():
    cues = load_tool('analysis_tools/analyze_synthetic_cues.py')
    gt = np.array([0] * 9 + [1])
    pred = np.zeros(10, int)  # always class 0: 9 of 10 objects right, but one class of two
    assert cues.class_mean_accuracy(pred, gt) == pytest.approx(0.5)
    assert cues.class_mean_accuracy(np.array([0] * 8 + [1, 1]), gt) == pytest.approx((8 / 9 + 1) / 2)


def test_object_features():
    cues = load_tool('analysis_tools/analyze_synthetic_cues.py')
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-0.5, 0.5, (200, 3)), np.full((200, 3), 0.25)], 1).astype(np.float32)
    f = cues.object_features(pts, np.array([0, 0, 0, 2.0, 0.5, 1.0, 0.3]))
    assert f['size'].tolist() == [0.5, 2.0, 1.0]  # sorted footprint, then height
    assert f['count'] == pytest.approx([math.log(200)])
    assert f['colour'][:6] == pytest.approx([0.25, 0.25, 0.25, 0, 0, 0], abs=1e-6)  # mean, std
    assert f['shape'][:48].sum() == pytest.approx(1) and f['shape'][48:].sum() == pytest.approx(1)  # histograms


def test_mlp_separates_separable_cues():
    cues = load_tool('analysis_tools/analyze_synthetic_cues.py')
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (10, 3))
    y = np.repeat(np.arange(10), 8)
    x = centres[y] + rng.normal(0, 0.1, (80, 3))
    assert cues.mlp_accuracy(x[::2], y[::2], x[1::2], y[1::2], steps=200) == 1.0
    # a feature that carries no class at all: the held-out classes are not recovered
    assert cues.mlp_accuracy(np.zeros((40, 1)), y[::2], np.zeros((40, 1)), y[1::2], steps=50) == pytest.approx(0.1)


def test_cue_analysis_on_a_written_set(written):
    cues = load_tool('analysis_tools/analyze_synthetic_cues.py')
    feats, labels, scenes = cues.collect(written, 'sunrgbd_infos_trainval.pkl', num_points=64)
    with open(osp.join(written, 'sunrgbd_infos_trainval.pkl'), 'rb') as f:
        infos = pickle.load(f)
    names = infos['metainfo']['classes']
    # every annotated object of the 10 test classes holds >= 30 points (--min-points), so none is skipped;
    # labels index the 10, scenes the infos' scenes
    expected = [(cues.CLASSES.index(names[i['bbox_label_3d']]), s) for s, info in enumerate(infos['data_list'])
                for i in info['instances'] if names[i['bbox_label_3d']] in cues.CLASSES]
    assert list(zip(labels.tolist(), scenes.tolist())) == expected
    assert feats['points'].shape == (len(labels), 64, 6)
    assert np.linalg.norm(feats['points'][..., :3], axis=-1).max(1) == pytest.approx(1, abs=1e-5)  # unit sphere
    results = cues.main([written])
    assert list(results) == ['size', 'colour', 'count', 'shape', 'shape + colour', 'size + colour + count',
                             'size + colour + count + shape']
    assert all(0 <= a <= 1 for a in results.values())
