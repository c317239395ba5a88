"""The SUN RGB-D converter (extraction layout -> mmdetection3d v2 infos, 37 classes) and its name mapping.

Conventions are checked on two real scenes (SUN RGB-D 000001 and 000002 in
the extraction layout, ``data/sunrgbd_raw_sample``); bad input, resumption
and the mapping rules on tiny scenes written here.
"""
import importlib.util
import json
import os
import os.path as osp

import mmcv
import numpy as np
import pytest
import scipy.io
from deep_equal import assert_same  # tests/data
from PIL import Image

from gsclip_mm.datasets.converters import (DEFAULT_MAPPING_FILE, SUNRGBD37Mapping, convert, depth2img_matrix,
                                           format_report, load_depth_points, normalize_name, parse_calib,
                                           parse_label_line, singular_candidates, subsample_points)
from gsclip_mm.datasets.utils import load_infos, load_points
from gsclip_mm.registry import DATASETS
from gsclip_mm.structures.boxes import points_in_rboxes
from gsclip_mm.structures.categories import SUNRGBD37_CLASSES, SUNRGBD_CLASSES

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The two raw scenes: shipped with the tests when copied there, else the planning repo's copy beside this one.
RAW = next((p for p in (osp.join(TESTS, 'data', 'sunrgbd_raw_sample'),
                        osp.join(osp.dirname(TESTS), '..', 'shared', 'data', 'sunrgbd_raw_sample'))
            if osp.isdir(osp.join(p, 'sunrgbd_trainval'))), None)
needs_raw = pytest.mark.skipif(RAW is None, reason='the raw SUN RGB-D sample (sunrgbd_raw_sample) is not here')
TOOL = osp.join(osp.dirname(TESTS), 'tools', 'dataset_converters', 'sunrgbd_converter.py')
CONVERTED_SAMPLE = osp.join(TESTS, 'data', 'sunrgbd_sample', 'sunrgbd_infos_val.pkl')  # mmdetection3d's output

# mmdetection3d's converted bed of scene 000001 (data/sunrgbd_raw_sample/README.md).
BED_BBOX = [328, 152, 674, 472]
BED_BBOX_3D = [1.0473, 4.1687, -0.2469, 2.3021, 1.8876, 1.9696, -1.6956]
# Every label line of the two scenes -> its 37-class name (None: no class, by the table's no_class rule).
EXPECTED = {1: ['bed', 'night_stand', None, 'dresser', 'dresser', 'lamp'], 2: ['bed', 'night_stand']}
RAW_NAMES = {1: ['bed', 'night_stand', 'ottoman', 'dresser_mirror', 'dresser', 'lamp'], 2: ['bed', 'night_stand']}


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """The two real scenes converted with the defaults (50,000 seeded points, image symlinks)."""
    out = str(tmp_path_factory.mktemp('sunrgbd37'))
    report = convert(RAW, out)
    return out, report, load_infos(osp.join(out, 'sunrgbd_infos_trainval.pkl'))


def scene(infos, idx):
    (info, ) = [i for i in infos['data_list'] if i['sample_idx'] == idx]
    return info


def projection(points, depth2img):
    """``[N, 3]`` depth points -> 1-based pixel ``u, v`` (``[N]`` each)."""
    p = points[:, :3].astype(np.float64) @ np.asarray(depth2img).T
    return p[:, 0] / p[:, 2], p[:, 1] / p[:, 2]


# ----------------------------------------------------------------------------- the real scenes

@needs_raw
def test_bed_of_scene_000001_equals_mmdetection3d(converted):
    _, _, infos = converted
    bed = scene(infos, 1)['instances'][0]
    assert bed['raw_name'] == 'bed' and bed['label_line'] == 1
    assert bed['bbox'] == BED_BBOX
    assert np.round(bed['bbox_3d'], 4).tolist() == BED_BBOX_3D
    assert bed['bbox_label_3d'] == bed['bbox_label'] == SUNRGBD37_CLASSES.index('bed') == 3
    assert bed['bbox_label_3d_mmdet3d'] == SUNRGBD_CLASSES.index('bed') == 0


@needs_raw
def test_every_object_is_in_the_infos_with_its_label_or_reported(converted):
    _, report, infos = converted
    unlabelled = {(osp.basename(u['file']), u['line']): u for u in report['unlabelled_objects']}
    for idx, classes in EXPECTED.items():
        label_file = osp.join(RAW, 'sunrgbd_trainval', 'label', f'{idx:06d}.txt')
        lines = [ln for ln in open(label_file).read().splitlines() if ln.strip()]
        insts = scene(infos, idx)['instances']
        assert [i['raw_name'] for i in insts] == RAW_NAMES[idx] == [ln.split()[0] for ln in lines]
        assert [i['label_line'] for i in insts] == list(range(1, len(lines) + 1))
        for inst, cls in zip(insts, classes):
            if cls is None:
                assert inst['bbox_label_3d'] == -1
                assert unlabelled[(f'{idx:06d}.txt', inst['label_line'])]['name'] == inst['raw_name']
            else:
                assert SUNRGBD37_CLASSES[inst['bbox_label_3d']] == cls
    assert report['objects'] == dict(total=8, labelled=7, no_class=1, unknown=0)
    assert report['no_class_names'] == {'ottoman': 1} and report['unknown_names'] == {}
    assert {c: n for c, n in report['per_class'].items() if n} == dict(bed=2, dresser=2, night_stand=2, lamp=1)
    assert report['scenes'] == dict(found=2, converted=2, reused=0, skipped=0)


@needs_raw
@pytest.mark.parametrize('idx', [1, 2])
def test_camera_identity_on_every_point(converted, idx):
    """Every point projects into the image at 1-based pixel centres, and its colour is that pixel's, exactly."""
    base = osp.join(RAW, 'sunrgbd_trainval')
    points = load_depth_points(osp.join(base, 'depth', f'{idx:06d}.mat'))  # all 280,961 / 256,599 points
    depth2img = depth2img_matrix(*parse_calib(osp.join(base, 'calib', f'{idx:06d}.txt')))
    assert scene(converted[2], idx)['images']['CAM0']['depth2img'] == depth2img.tolist()
    img = mmcv.imread(osp.join(base, 'image', f'{idx:06d}.jpg'), channel_order='rgb')  # [530, 730, 3]
    u, v = projection(points, depth2img)
    col, row = np.round(u).astype(int), np.round(v).astype(int)
    assert col.min() == 1 and col.max() == 730 and row.min() == 1 and row.max() == 530
    assert np.array_equal(np.round(points[:, 3:] * 255), img[row - 1, col - 1])
    # 0-based pixel indices would be off (the README measures 0.025): the convention matters.
    shifted = img[np.minimum(row, 529), np.minimum(col, 729)] / 255.0
    assert np.abs(shifted - points[:, 3:]).mean() > 0.01


@needs_raw
def test_infos_have_every_key_of_mmdetection3d_infos(converted):
    """Our infos hold every key (with its type) of mmdetection3d's converted sample, plus ours."""
    ref = load_infos(CONVERTED_SAMPLE)['data_list'][0]
    ours = scene(converted[2], 1)

    def same_keys(a, b, where):
        for key, value in a.items():
            assert key in b, f'{where}.{key} missing'
            assert type(b[key]) is type(value), f'{where}.{key}: {type(b[key])} vs {type(value)}'
            if isinstance(value, dict):
                same_keys(value, b[key], f'{where}.{key}')

    same_keys(ref, ours, 'info')
    same_keys(ref['instances'][0], ours['instances'][0], 'instance')
    assert ours['sample_idx'] == 1 and ours['lidar_points'] == dict(num_pts_feats=6, lidar_path='000001.bin')
    assert (ours['images']['CAM0']['height'], ours['images']['CAM0']['width']) == (530, 730)
    meta = converted[2]['metainfo']
    assert tuple(meta['classes']) == SUNRGBD37_CLASSES
    assert meta['categories']['bag'] == 36 and meta['info_version'] == '1.1'


@needs_raw
def test_dataset_reads_the_37_classes_from_the_infos(converted):
    out = converted[0]
    ds = DATASETS.build(dict(type='SUNRGBDObjectDataset', data_root=out, ann_file='sunrgbd_infos_trainval.pkl',
                             min_points=1))
    assert ds.metainfo['classes'] == SUNRGBD37_CLASSES  # ann_classes from the infos' metainfo
    names = sorted(ds.get_data_info(i)['class_name'] for i in range(len(ds)))
    assert names == ['bed', 'bed', 'dresser', 'dresser', 'lamp', 'night_stand', 'night_stand']
    assert ds.filter_counts['ignored_class'] == 1  # the ottoman (-1)
    # Projected into the image, an object's points fall inside its 2D box (measured: 98.2% to 100%).
    inside = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        pts = load_points(info['lidar_path'], 6)
        mask = points_in_rboxes(pts, info['bbox_3d'][None])[0]
        u, v = projection(pts[mask], info['depth2img'])
        x1, y1, x2, y2 = info['bbox']
        inside.append(((u >= x1) & (u <= x2) & (v >= y1) & (v <= y2)).mean())
    assert min(inside) > 0.97 and np.mean(inside) > 0.99, inside
    # The paper's zero-shot vocabulary picks its 10 classes by name from the 37.
    ds10 = DATASETS.build(dict(type='SUNRGBDObjectDataset', data_root=out, ann_file='sunrgbd_infos_trainval.pkl',
                               min_points=1, metainfo=dict(classes=SUNRGBD_CLASSES)))
    labels = sorted(ds10.get_data_info(i)['gt_label'] for i in range(len(ds10)))
    expected = ('bed', 'bed', 'dresser', 'dresser', 'night_stand', 'night_stand')
    assert labels == [SUNRGBD_CLASSES.index(c) for c in expected]


@needs_raw
def test_points_are_a_seeded_subset_independent_of_workers(converted, tmp_path):
    out = converted[0]
    full = load_depth_points(osp.join(RAW, 'sunrgbd_trainval', 'depth', '000001.mat'))  # [280961, 6]
    written = load_points(osp.join(out, 'points', '000001.bin'), 6)
    assert written.shape == (50000, 6)
    rows = full.view(np.dtype((np.void, 24))).ravel()
    assert np.isin(written.view(np.dtype((np.void, 24))).ravel(), rows).all()  # every row is a scanned point
    again = convert(RAW, str(tmp_path / 'w2'), workers=2)
    assert again['scenes']['converted'] == 2
    for name in ('000001.bin', '000002.bin'):
        with open(osp.join(out, 'points', name), 'rb') as a, open(tmp_path / 'w2' / 'points' / name, 'rb') as b:
            assert a.read() == b.read()
    other = subsample_points(full, 50000, seed=1, sample_idx=1)
    assert not np.array_equal(other, written)


def test_subsample_points_rules():
    pts = np.arange(20, dtype=np.float32).reshape(10, 2)
    assert subsample_points(pts, 0, 0, 1) is pts and subsample_points(pts, 10, 0, 1) is pts  # all points
    part = subsample_points(pts, 4, seed=0, sample_idx=7)
    assert part.shape == (4, 2) and np.all(np.diff(part[:, 0]) > 0)  # distinct rows, in file order
    assert np.array_equal(part, subsample_points(pts, 4, seed=0, sample_idx=7))
    assert not np.array_equal(part, subsample_points(pts, 4, seed=0, sample_idx=8))


# ----------------------------------------------------------------------------- tiny scenes written here

K_TEXT = '50 0 0 0 50 0 20 15 1'  # column-major: f = 50, principal point (20, 15)
RTILT_TEXT = '1 0 0 0 1 0 0 0 1'


def label_line(name, cx=0.0, cy=3.0, extra=''):
    return f'{name} 5 5 10 10 {cx} {cy} 0 0.3 0.3 0.3 1 0{extra}'


def make_scene(root, idx, labels, image=True, calib=RTILT_TEXT + '\n' + K_TEXT, depth='ok'):
    """Write scene ``idx`` of a tiny extraction layout (40 x 30 image, 300 points in front of the camera)."""
    base = osp.join(root, 'sunrgbd_trainval')
    for sub in ('depth', 'image', 'calib', 'label'):
        os.makedirs(osp.join(base, sub), exist_ok=True)
    name = f'{idx:06d}'
    with open(osp.join(base, 'label', name + '.txt'), 'w') as f:
        f.write('\n'.join(labels) + ('\n' if labels else ''))
    if calib is not None:
        with open(osp.join(base, 'calib', name + '.txt'), 'w') as f:
            f.write(calib + '\n')
    if image:
        Image.new('RGB', (40, 30), (idx * 20 % 255, 80, 120)).save(osp.join(base, 'image', name + '.jpg'))
    rng = np.random.default_rng(idx)
    pts = np.concatenate([rng.uniform([-1, 2, -1], [1, 4, 1], (300, 3)), rng.uniform(0, 1, (300, 3))], 1)
    path = osp.join(base, 'depth', name + '.mat')
    if depth == 'ok':
        scipy.io.savemat(path, dict(instance=pts.astype(np.float32)))
    elif depth == 'no_instance':
        scipy.io.savemat(path, dict(points=pts.astype(np.float32)))
    elif depth == 'bad_shape':
        scipy.io.savemat(path, dict(instance=pts[:, :3].astype(np.float32)))
    elif depth == 'nan_rows':  # two rows with a NaN: dropped and counted
        pts[[3, 7], 2] = np.nan
        scipy.io.savemat(path, dict(instance=pts.astype(np.float32)))
    elif depth == 'garbage':
        with open(path, 'wb') as f:
            f.write(b'not a MATLAB file at all')


def tiny_root(tmp_path, n=3):
    root = str(tmp_path / 'raw')
    for idx in range(1, n + 1):
        make_scene(root, idx, [label_line('chair'), label_line('nightstand', cx=0.5)])
    return root


def mtimes(out, sub):
    return {n: os.stat(osp.join(out, sub, n)).st_mtime_ns for n in sorted(os.listdir(osp.join(out, sub)))}


def test_bad_inputs_are_counted_and_named(tmp_path):
    root = str(tmp_path / 'raw')
    labels = [label_line('chair'), 'table 1 2 3', 'desk 1 2 3 4 x 0 0 1 1 1 1 0', label_line('sofa', cx='nan'),
              label_line('fire_extinguiser'), label_line('ottoman'), '', label_line('coffee table')]
    make_scene(root, 1, depth='nan_rows', labels=labels)
    make_scene(root, 2, [label_line('chair')], depth=None)  # no depth file
    make_scene(root, 3, [label_line('chair')], image=False, calib=None)
    make_scene(root, 4, [label_line('chair')], depth='no_instance')
    make_scene(root, 5, [])  # no objects
    make_scene(root, 6, ['bed 1 2', 'bed'])  # only unreadable lines
    make_scene(root, 7, [label_line('chair')], calib=RTILT_TEXT + '\n50 0 0 0 50 0 20 15')
    make_scene(root, 8, [label_line('chair')], depth='garbage')
    make_scene(root, 9, [label_line('chair')], depth='bad_shape')
    out = str(tmp_path / 'out')
    report = convert(root, out)

    label = osp.join(root, 'sunrgbd_trainval', 'label')
    assert report['scenes'] == dict(found=9, converted=1, reused=0, skipped=8)
    reasons = {d['scene']: d['reason'] for d in report['skipped_scenes']}
    assert reasons[2] == f'missing depth file {osp.join(root, "sunrgbd_trainval", "depth", "000002.mat")}'
    assert 'missing calib file' in reasons[3] and 'image file' in reasons[3] and '000003.jpg' in reasons[3]
    assert '000004.mat' in reasons[4] and "no variable 'instance'" in reasons[4] and "'points'" in reasons[4]
    assert reasons[5] == f'{osp.join(label, "000005.txt")}: no objects'
    assert reasons[6] == f'{osp.join(label, "000006.txt")}: no objects (2 unreadable lines)'
    assert reasons[7].startswith(osp.join(root, 'sunrgbd_trainval', 'calib', '000007.txt') + ':2: K needs 9')
    assert '000008.mat' in reasons[8] and 'not a readable MATLAB file' in reasons[8]
    assert '000009.mat' in reasons[9] and '(300, 3)' in reasons[9]

    lines = {(osp.basename(d['file']), d['line']): d['reason'] for d in report['skipped_lines']}
    assert set(lines) == {('000001.txt', 2), ('000001.txt', 3), ('000001.txt', 4), ('000006.txt', 1),
                          ('000006.txt', 2)}
    assert lines[('000001.txt', 2)].startswith('4 fields, expected 13')
    assert lines[('000001.txt', 3)].startswith('not a number')
    assert lines[('000001.txt', 4)].startswith('non-finite box value')
    assert report['unknown_names'] == {'fire_extinguiser': 1} and report['no_class_names'] == {'ottoman': 1}
    assert [(osp.basename(u['file']), u['line'], u['rule']) for u in report['unlabelled_objects']] == [
        ('000001.txt', 5, 'unknown'), ('000001.txt', 6, 'no_class')]

    infos = load_infos(osp.join(out, 'sunrgbd_infos_trainval.pkl'))
    assert [i['sample_idx'] for i in infos['data_list']] == [1]
    insts = infos['data_list'][0]['instances']
    assert [(i['raw_name'], i['label_line'], i['bbox_label_3d']) for i in insts] == [
        ('chair', 1, SUNRGBD37_CLASSES.index('chair')), ('fire_extinguiser', 5, -1), ('ottoman', 6, -1),
        ('coffee table', 8, SUNRGBD37_CLASSES.index('table'))]
    assert json.load(open(osp.join(out, 'sunrgbd_converter_report.json')))['scenes']['skipped'] == 8
    text = format_report(report)
    assert f'{osp.join(label, "000001.txt")}:2: 4 fields' in text and "'fire_extinguiser': 1" in text
    assert os.listdir(osp.join(out, 'points')) == ['000001.bin']  # nothing for the skipped scenes
    assert report['points'] == dict(written=298, nonfinite_dropped=2)
    assert len(load_points(osp.join(out, 'points', '000001.bin'), 6)) == 298


def test_resume_redoes_only_unfinished_scenes(tmp_path):
    root, out = tiny_root(tmp_path), str(tmp_path / 'out')
    first = convert(root, out, num_points=100)
    assert first['scenes'] == dict(found=3, converted=3, reused=0, skipped=0)
    before, points2 = mtimes(out, 'points'), open(osp.join(out, 'points', '000002.bin'), 'rb').read()
    infos_before = load_infos(osp.join(out, 'sunrgbd_infos_trainval.pkl'))

    os.remove(osp.join(out, 'points', '000002.bin'))  # one scene's output is lost
    again = convert(root, out, num_points=100)
    assert again['scenes'] == dict(found=3, converted=1, reused=2, skipped=0)
    after = mtimes(out, 'points')
    assert after['000001.bin'] == before['000001.bin'] and after['000003.bin'] == before['000003.bin']
    assert open(osp.join(out, 'points', '000002.bin'), 'rb').read() == points2
    assert_same(load_infos(osp.join(out, 'sunrgbd_infos_trainval.pkl')), infos_before)  # types included

    os.remove(osp.join(out, 'conversion_records', '000003.pkl'))  # a record is lost: that scene is redone
    assert convert(root, out, num_points=100)['scenes']['converted'] == 1
    assert convert(root, out, num_points=100)['scenes']['reused'] == 3  # nothing left to do
    assert convert(root, out, num_points=50)['scenes']['converted'] == 3  # other settings: all redone

    # Another mapping table: every record is stale, and the report follows the new table.
    table = json.load(open(DEFAULT_MAPPING_FILE))
    table['no_class'].append(dict(names=['nightstand'], note='test'))
    table['synonyms'] = [dict(g, names=[n for n in g['names'] if n != 'nightstand']) for g in table['synonyms']]
    custom = str(tmp_path / 'mapping.json')
    json.dump(table, open(custom, 'w'))
    report = convert(root, out, num_points=50, mapping_file=custom)
    assert report['scenes']['converted'] == 3 and report['no_class_names'] == {'nightstand': 3}


def test_killed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    root, out = tiny_root(tmp_path, n=2), str(tmp_path / 'out')
    calls = []

    def killed(fd):  # the run dies while the second file (scene 1's record) is being written
        calls.append(fd)
        if len(calls) == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(os, 'fsync', killed)
    with pytest.raises(KeyboardInterrupt):
        convert(root, out, num_points=100)
    monkeypatch.undo()
    # The points of scene 1 were complete (written then renamed); its record was not: no partial file, no temp file.
    assert os.listdir(osp.join(out, 'points')) == ['000001.bin']
    assert os.listdir(osp.join(out, 'conversion_records')) == []
    assert not osp.exists(osp.join(out, 'sunrgbd_infos_trainval.pkl'))
    report = convert(root, out, num_points=100)
    assert report['scenes'] == dict(found=2, converted=2, reused=0, skipped=0)  # scene 1 had no record: redone
    assert len(load_infos(osp.join(out, 'sunrgbd_infos_trainval.pkl'))['data_list']) == 2


def test_images_linked_or_copied_and_split_files(tmp_path):
    root = tiny_root(tmp_path, n=3)
    with open(osp.join(root, 'sunrgbd_trainval', 'train_data_idx.txt'), 'w') as f:
        f.write('1\n3\n')
    with open(osp.join(root, 'sunrgbd_trainval', 'val_data_idx.txt'), 'w') as f:
        f.write('2\n')
    linked = str(tmp_path / 'linked')
    convert(root, linked, num_points=100)
    img = osp.join(linked, 'sunrgbd_trainval', 'image', '000002.jpg')
    assert osp.islink(img) and osp.samefile(img, osp.join(root, 'sunrgbd_trainval', 'image', '000002.jpg'))
    ids = {s: [i['sample_idx'] for i in load_infos(osp.join(linked, f'sunrgbd_infos_{s}.pkl'))['data_list']]
           for s in ('train', 'val', 'trainval')}
    assert ids == dict(train=[1, 3], val=[2], trainval=[1, 2, 3])
    copied = str(tmp_path / 'copied')
    convert(root, copied, num_points=100, copy_images=True)
    img = osp.join(copied, 'sunrgbd_trainval', 'image', '000002.jpg')
    assert not osp.islink(img) and open(img, 'rb').read() == open(
        osp.join(root, 'sunrgbd_trainval', 'image', '000002.jpg'), 'rb').read()
    in_place = convert(root, None, num_points=100)  # out_dir = root: the images are already where they belong
    assert in_place['scenes']['converted'] == 3 and not osp.islink(
        osp.join(root, 'sunrgbd_trainval', 'image', '000002.jpg'))


def test_tool_exit_status_and_missing_root(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('sunrgbd_converter', TOOL)  # the tool, in this process
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    main = tool.main
    root = str(tmp_path / 'raw')
    make_scene(root, 1, [label_line('chair')], depth=None)
    assert main(['--root', root, '--out-dir', str(tmp_path / 'out'), '--workers', '1']) == 1
    assert 'missing depth file' in capsys.readouterr().out
    make_scene(root, 2, [label_line('chair')])
    assert main(['--root', root, '--out-dir', str(tmp_path / 'out'), '--workers', '1', '--num-points', '0']) == 0
    assert len(load_points(str(tmp_path / 'out' / 'points' / '000002.bin'), 6)) == 300  # --num-points 0: all
    with pytest.raises(FileNotFoundError, match='sunrgbd_trainval'):
        convert(str(tmp_path / 'nothing'), str(tmp_path / 'out2'))


def test_parse_label_line_conventions():
    name, bbox, bbox_3d = parse_label_line('coffee table 1 2 3 4 0.5 1.5 -0.5 0.25 0.75 1.0 0 1')
    assert name == 'coffee table'  # a name with a space (mmdetection3d's split(' ') would fail)
    assert bbox == [1.0, 2.0, 4.0, 6.0]  # x1 y1 x2 y2
    assert bbox_3d == [0.5, 1.5, -0.5, 1.5, 0.5, 2.0, np.pi / 2]  # dx = 2 hl, dy = 2 hw, yaw = atan2(oy, ox)


# ----------------------------------------------------------------------------- the 37-class mapping

@pytest.mark.parametrize('variants, cls', [
    (['night_stand', 'nightstand', 'Night Stand', 'night-stand', 'NIGHTSTANDS', 'night_stands', 'bedside table'],
     'night_stand'),
    (['chair', 'chairs', 'Chairs', 'office chair', 'sofa_chair'], 'chair'),
    (['shower_curtain', 'showercurtain', 'shower curtain', 'Shower-Curtains'], 'shower_curtain'),
    (['table', 'coffeetable', 'coffee table', 'coffee_tables', 'endtable', 'tables'], 'table'),
    (['bookshelf', 'book_shelf', 'bookshelves', 'book case', 'bookcases'], 'bookshelf'),
    (['shelves', 'shelf', 'shelfs'], 'shelves'),
    (['box', 'boxes', 'cardboard box'], 'box'),
    (['person', 'people', 'persons'], 'person'),
])
def test_variants_map_to_one_class(variants, cls):
    mapping = SUNRGBD37Mapping()
    hits = [mapping.match(v) for v in variants]
    assert [h.class_name for h in hits] == [cls] * len(variants)
    assert {h.label for h in hits} == {SUNRGBD37_CLASSES.index(cls)}


def test_unknown_and_unlabelled_names():
    mapping = SUNRGBD37Mapping()
    hit = mapping.match('fire_extinguiser')
    assert (hit.label, hit.class_name, hit.rule, hit.normalized) == (-1, None, 'unknown', 'fire_extinguiser')
    assert [mapping.match(n)[::2] for n in ('ottoman', 'stools', 'garbage_bin', 'monitor')] == [(-1, 'no_class')] * 4
    # A part is not its object: these stay unknown.
    assert {mapping.match(n).rule for n in ('chair_leg', 'door_knob', 'table_top')} == {'unknown'}


def test_normalisation_and_plural_rules():
    assert normalize_name('  Coffee--Table / Small ') == 'coffee_table_small'
    assert normalize_name('night_stand') == normalize_name('Night Stand') == 'night_stand'
    assert singular_candidates('boxes') == ['box', 'boxe']
    assert singular_candidates('couches') == ['couch', 'couche']
    assert singular_candidates('bookshelves') == ['bookshelf', 'bookshelfe', 'bookshelve']
    assert singular_candidates('cubbies') == ['cubby', 'cubbie']
    assert singular_candidates('tubes') == ['tube']  # -es only after a sibilant: never 'tub' (bathtub)
    assert SUNRGBD37Mapping().match('tubes').rule == 'unknown'
    assert singular_candidates('glass') == [] and singular_candidates('bus') == []


def test_the_37_classes_and_the_shipped_table():
    # The toolbox's seg37 order (label = index + 1 there), and the paper's 10 zero-shot classes inside it.
    assert len(SUNRGBD37_CLASSES) == 37
    assert (SUNRGBD37_CLASSES[0], SUNRGBD37_CLASSES[3], SUNRGBD37_CLASSES[31], SUNRGBD37_CLASSES[36]) == (
        'wall', 'bed', 'night_stand', 'bag')
    assert set(SUNRGBD_CLASSES) <= set(SUNRGBD37_CLASSES)
    mapping = SUNRGBD37Mapping()
    assert mapping.path == DEFAULT_MAPPING_FILE and len(mapping.rules) >= 5
    assert len(mapping.synonyms) > 300 and len(mapping.no_class) > 50
    # No listed name is one the plural rule already resolves to the same class (the table stays minimal).
    for name, cls in mapping.synonyms.items():
        for singular in singular_candidates(name):
            hit = mapping._exact(singular)
            assert hit is None or hit.class_name != cls, f'{name!r} is redundant with {singular!r}'


@pytest.mark.parametrize('change, message', [
    (lambda t: t['synonyms'].append(dict(**{'class': 'stool'}, names=['barstool2'])), "'stool' is not one of"),
    (lambda t: t['synonyms'][0]['names'].append('Wall Panel'), 'is not normalised'),
    (lambda t: t['no_class'].append(dict(names=['nightstand'], note='')), "'nightstand' is listed twice"),
    (lambda t: t['no_class'].append(dict(names=['bed'], note='')), "'bed' is listed twice"),
])
def test_a_broken_table_is_refused_naming_the_file(tmp_path, change, message):
    table = json.load(open(DEFAULT_MAPPING_FILE))
    change(table)
    path = str(tmp_path / 'broken.json')
    json.dump(table, open(path, 'w'))
    with pytest.raises(ValueError, match=message) as info:
        SUNRGBD37Mapping(path)
    assert path in str(info.value)
