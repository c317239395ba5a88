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


# The depth-map table (issue 13): PointCLIP, CLIP2Point zero-shot and its adapter beside GS-CLIP and CLIP^2.
DEPTH_ROWS = ['PointCLIP (points)', 'PointCLIP (Gaussians)', 'CLIP2Point zero-shot',
              'CLIP2Point GDPA 1-shot (points)', 'CLIP2Point GDPA 2-shot (points)', 'CLIP2Point GDPA 4-shot (points)',
              'CLIP2Point GDPA 8-shot (points)', 'CLIP2Point GDPA 16-shot (points)',
              'CLIP2Point GDPA 16-shot (Gaussians)']


def test_depth_table_rows_and_configs():
    tables = load_tool('analysis_tools/reproduce_tables.py')
    assert tables.table_rows('synthetic', ['depth']) == ['GS-CLIP', 'CLIP^2 (PointNet++)'] + DEPTH_ROWS
    # Table 1's rows first, each row once, when both tables are asked for
    both = tables.table_rows('synthetic', ['1', 'depth'])
    assert both[:3] == ['GS-CLIP', 'CLIP^2 (PointNet++)', 'GS-CLIP w/o size feature (ours)'] and both[3:] == DEPTH_ROWS
    # every synthetic row has its config; on SUN RGB-D the zero-shot rows and the pre-training do, the few-shot not
    assert all(osp.isfile(osp.join(ROOT, p)) for p in tables.DEPTH['synthetic'].values())
    real = {row: osp.isfile(osp.join(ROOT, p)) for row, p in tables.DEPTH['sunrgbd37'].items()}
    assert [row for row, found in real.items() if found] == DEPTH_ROWS[:3]
    assert all(osp.isfile(osp.join(ROOT, p)) for p in tables.PRETRAIN.values())
    # what each row trains and how it gets the pre-trained depth encoder, read from the configs
    cfgs = {row: Config.fromfile(osp.join(ROOT, p)) for row, p in tables.DEPTH['synthetic'].items()}
    option = {row: tables.depth_checkpoint_option(c) for row, c in cfgs.items()}
    assert option['PointCLIP (points)'] is None and option['PointCLIP (Gaussians)'] is None
    assert option['CLIP2Point zero-shot'] == 'model.backbone.init_cfg.checkpoint'
    assert {option[r] for r in DEPTH_ROWS[3:]} == {'model.pretrained_depth'}
    assert tables.training_of(cfgs['PointCLIP (points)']) == 'none (training-free)'
    assert tables.training_of(cfgs['CLIP2Point zero-shot']) == 'image-depth pre-training (no labels)'
    assert tables.training_of(cfgs['CLIP2Point GDPA 4-shot (points)']) == \
        '4 labelled objects per class + image-depth pre-training'
    assert tables.training_of(cfgs['CLIP2Point GDPA 16-shot (Gaussians)']).startswith('16 labelled')
    # only the Gaussian PointCLIP fits Gaussians, and on its test split only (training-free)
    assert tables.fitting_splits(cfgs['PointCLIP (Gaussians)']) == ['test']
    assert tables.fitting_splits(cfgs['PointCLIP (points)']) == []
    # the same test split and metric as GS-CLIP's, for every row of both data sets
    for data in tables.DATASETS:
        same = tables.split_signature(Config.fromfile(osp.join(ROOT, tables.DATASETS[data]['GS-CLIP'])))
        for row, path in tables.DEPTH[data].items():
            if osp.isfile(osp.join(ROOT, path)):
                assert tables.split_signature(Config.fromfile(osp.join(ROOT, path))) == same, (data, row)


def fake_predictions():
    """Five objects scored over a 4-class vocabulary, as tools/test.py --out dumps them."""
    vocab = ('bed', 'chair', 'sofa', 'lamp')
    rows = [('bed', [0.9, 0.1, 0.0, 0.0]),    # right
            ('bed', [0.1, 0.8, 0.0, 0.0]),    # chair: wrong
            ('chair', [0.0, 0.7, 0.1, 0.2]),  # right
            ('sofa', [0.0, 0.1, 0.3, 0.9]),   # lamp: wrong over 4 classes, right over bed/chair/sofa
            ('lamp', [0.0, 0.0, 0.0, 1.0])]   # right; not among the 3 classes
    return [dict(pred_score=np.array(s, np.float32), metainfo=dict(
        class_name=c, score_classes=vocab, clip_untrained=True, clip_model='GSCLIP-Tiny-64')) for c, s in rows]


def test_depth_table_from_a_work_dir(tmp_path):
    tables = load_tool('analysis_tools/reproduce_tables.py')
    preds = tmp_path / 'predictions.pkl'
    with open(preds, 'wb') as f:
        pickle.dump(fake_predictions(), f)
    cfg = Config(dict(test_evaluator=[dict(type='ZeroShotAccuracy', classes=['bed', 'chair', 'sofa']),
                                      dict(type='ZeroShotAccuracy', prefix='zero_shot37')]))
    m = tables.evaluate(cfg, str(preds))
    # 3 classes: 3 of 4 right (75.0), class mean (50 + 100 + 100) / 3; 4 classes: 3 of 5 right
    assert m['zero_shot/overall_acc'] == pytest.approx(75.0)
    assert m['zero_shot/class_mean_acc'] == pytest.approx(250 / 3)
    assert m['zero_shot37/overall_acc'] == pytest.approx(60.0)
    assert m['clip_untrained'] is True
    rows = {'CLIP2Point GDPA 4-shot (points)': (m, 'configs/clip2point/x_4shot.py', '4 labelled objects per class'),
            'CLIP2Point GDPA 1-shot (points)': (None, 'configs/clip2point/y_sunrgbd37.py', None)}
    head, rule, row, missing = tables.depth_table(rows).splitlines()
    assert head == '| Method | training | Avg. | class mean (ours) | 37-class Avg. (ours) | config |'
    assert row == ('| CLIP2Point GDPA 4-shot (points) | 4 labelled objects per class | 75.0 | 83.3 | 60.0 | '
                   '`x_4shot.py` |')
    assert missing == '| CLIP2Point GDPA 1-shot (points) | - | - | - | - | no config (`y_sunrgbd37.py`) |'
    caveat = tables.clip_caveat({k: v[0] for k, v in rows.items()}, 10)
    assert 'untrained' in caveat and 'every row' in caveat and 'chance is 10.0 %' in caveat
    assert tables.clip_caveat({'a': dict(m, clip_untrained=False)}, 10) == ''


def test_depth_table_commands_on_real_data(tmp_path, monkeypatch):
    """sunrgbd37: the pre-training is trained (resumably) before the row that loads it, the training-free rows
    are tested without a checkpoint, and the rows without a config say so; no subprocess runs here."""
    tables = load_tool('analysis_tools/reproduce_tables.py')
    commands = []
    ckpt = tmp_path / 'pre' / 'epoch_10.pth'

    def fake_run(cmd):
        commands.append(cmd)
        if cmd[0] == tables.TRAIN:  # what tools/train.py leaves: its last checkpoint
            work_dir = cmd[cmd.index('--work-dir') + 1]
            ckpt.parent.mkdir(exist_ok=True)
            ckpt.write_bytes(b'')
            with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
                f.write(str(ckpt))

    monkeypatch.setattr(tables, 'run', fake_run)
    monkeypatch.setattr(tables, 'evaluate',
                        lambda cfg, preds: {'zero_shot/overall_acc': 12.34, 'clip_untrained': False})
    pre = osp.join(str(tmp_path), 'sunrgbd37', 'clip2point_pretrain_1xb32-cosine-10e_sunrgbd37')
    (tmp_path / 'sunrgbd37' / osp.basename(pre)).mkdir(parents=True)  # tools/train.py would make it
    out = tmp_path / 'table.md'
    results = tables.main(['--data', 'sunrgbd37', '--tables', 'depth', '--work-root', str(tmp_path), '--out', str(out),
                           '--rows', 'PointCLIP (points)', 'CLIP2Point zero-shot', 'CLIP2Point GDPA 4-shot (points)'])
    points = 'configs/clip2point/pointclip_points_zeroshot_sunrgbd37.py'
    zeroshot = 'configs/clip2point/clip2point_zeroshot_sunrgbd37.py'
    pretrain = 'configs/clip2point/clip2point_pretrain_1xb32-cosine-10e_sunrgbd37.py'
    wd = osp.join(str(tmp_path), 'sunrgbd37')
    assert [c[:2] for c in commands] == [[tables.TEST, points], [tables.EXTRACT, pretrain], [tables.TRAIN, pretrain],
                                         [tables.TEST, zeroshot]]
    assert commands[0][2:] == ['--work-dir', osp.join(wd, 'pointclip_points_zeroshot_sunrgbd37'), '--out',
                               osp.join(wd, 'pointclip_points_zeroshot_sunrgbd37', 'predictions.pkl')]
    assert commands[2][2:] == ['--work-dir', pre, '--resume']
    assert commands[3][-2:] == ['--cfg-options', f'model.backbone.init_cfg.checkpoint={ckpt}']
    assert results['CLIP2Point GDPA 4-shot (points)'][0] is None
    text = out.read_text()
    assert ('| PointCLIP (points) | none (training-free) | 12.3 | - | - | '
            '`pointclip_points_zeroshot_sunrgbd37.py` |') in text
    assert '| CLIP2Point GDPA 4-shot (points) | - | - | - | - | no config' in text
    assert 'untrained' not in text  # a pretrained CLIP: no caveat


def test_clip2point_metafile_lists_the_depth_rows():
    import yaml
    tables = load_tool('analysis_tools/reproduce_tables.py')
    meta = yaml.safe_load(open(osp.join(ROOT, 'configs', 'clip2point', 'metafile.yml')))
    configs = [m['Config'] for m in meta['Models']]
    for model in meta['Models']:
        assert osp.isfile(osp.join(ROOT, model['Config'])) and osp.basename(model['Config']) == model['Name'] + '.py'
    for data in tables.DATASETS:
        assert tables.PRETRAIN[data] in configs
        assert [p for p in tables.DEPTH[data].values() if osp.isfile(osp.join(ROOT, p))] == \
            [p for p in configs if p in tables.DEPTH[data].values()]
