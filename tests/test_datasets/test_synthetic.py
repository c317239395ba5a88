"""Synthetic SUN RGB-D generator: layout, conventions, determinism."""
import os.path as osp
import pickle
import sys

import cv2
import numpy as np
import pytest

from gsclip_mm.datasets.synthetic import (CLASSES, generate_scene,
                                          plan_scenes, split_scenes)
from gsclip_mm.datasets.synthetic.render import backproject, rasterize
from gsclip_mm.datasets.synthetic.scene import AXES
from gsclip_mm.datasets.utils import points_in_rboxes

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SAMPLE = osp.join(REPO, 'tests', 'data', 'sunrgbd_sample')
sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
import make_synthetic_sunrgbd  # noqa: E402

H, W = 120, 160  # small images keep the tests fast


@pytest.fixture(scope='module')
def written(tmp_path_factory):
    """Six scenes written by the tool (one worker)."""
    out = str(tmp_path_factory.mktemp('syn'))
    make_synthetic_sunrgbd.main([
        '--out-dir', out, '--num-scenes', '6', '--seed', '3', '--height',
        str(H), '--width', str(W), '--min-points', '30', '--val-ratio', '0.34',
        '--workers', '1'
    ])
    return out


def _structure(x):
    """Nested keys and leaf types, with lists reduced to their first item."""
    if isinstance(x, dict):
        return {k: _structure(v) for k, v in x.items()}
    if isinstance(x, list):
        return ['list', len(x) if x and not isinstance(x[0], dict) else None,
                _structure(x[0]) if x else None]
    return type(x).__name__


def test_rasterize_and_backproject_plane():
    # a square 4 m wide at y = 2 facing an untilted camera (f = 100)
    k = np.array([[100., 0, 40], [0, 100., 30], [0, 0, 1]])
    d2i = k @ AXES
    verts = np.array([[-2, 2, -2], [2, 2, -2], [2, 2, 2], [-2, 2, 2.]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    r = rasterize(verts, faces, d2i, 60, 80)
    assert (r['face'] >= 0).all() and np.allclose(r['depth'], 2.0)
    pts = backproject(r['depth'], d2i)  # [60, 80, 3]
    assert np.allclose(pts[..., 1], 2.0)
    # pixel (row 30, col 40) has its centre 0.5 px right and below the
    # principal point: x = 0.5 / 100 * 2, z = -0.5 / 100 * 2
    assert np.allclose(pts[30, 40], [0.01, 2.0, -0.01])
    # a nearer triangle in front wins the z-buffer where it covers
    verts2 = np.concatenate([verts, [[-0.5, 1, -0.5], [0.5, 1, -0.5],
                                     [0, 1, 0.5]]])
    faces2 = np.concatenate([faces, [[4, 5, 6]]])
    r2 = rasterize(verts2, faces2, d2i, 60, 80)
    assert r2['face'][30, 40] == 2 and np.isclose(r2['depth'][30, 40], 1.0)
    assert r2['face'][0, 0] in (0, 1)


def test_deterministic_from_seed():
    a_info, a = generate_scene(4, 11, 'desk', H, W, min_points=30)
    b_info, b = generate_scene(4, 11, 'desk', H, W, min_points=30)
    c_info, c = generate_scene(4, 12, 'desk', H, W, min_points=30)
    assert pickle.dumps(a_info) == pickle.dumps(b_info)
    assert np.array_equal(a['points'], b['points'])
    assert np.array_equal(a['image'], b['image'])
    assert not np.array_equal(a['image'], c['image'])
    assert plan_scenes(30, 1) == plan_scenes(30, 1)
    assert plan_scenes(30, 1) != plan_scenes(30, 2)


def test_layout_matches_real_sample(written):
    with open(osp.join(SAMPLE, 'sunrgbd_infos_val.pkl'), 'rb') as f:
        real = pickle.load(f)
    for split in ('train', 'val'):
        with open(osp.join(written, f'sunrgbd_infos_{split}.pkl'), 'rb') as f:
            syn = pickle.load(f)
        assert syn['metainfo'] == real['metainfo']
        assert _structure(syn) == _structure(real)
        for info in syn['data_list']:
            cam = info['images']['CAM0']
            assert isinstance(cam['height'], np.int32)
            assert (cam['height'], cam['width']) == (H, W)
            img = cv2.imread(osp.join(written, 'sunrgbd_trainval', 'image',
                                      cam['img_path']))
            assert img.shape == (H, W, 3)
            pts = np.fromfile(osp.join(written, 'points',
                                       info['lidar_points']['lidar_path']),
                              np.float32)
            assert pts.size % 6 == 0 and pts.size > 0
            rgb = pts.reshape(-1, 6)[:, 3:]
            assert rgb.min() >= 0 and rgb.max() <= 1
            for inst in info['instances']:
                assert inst['bbox_label'] == inst['bbox_label_3d']
                assert 0 <= inst['bbox_label_3d'] < len(CLASSES)


def test_split_is_disjoint_and_complete(written):
    names = []
    for split in ('train', 'val'):
        with open(osp.join(written, f'sunrgbd_infos_{split}.pkl'), 'rb') as f:
            names.append([i['lidar_points']['lidar_path']
                          for i in pickle.load(f)['data_list']])
    assert (len(names[0]), len(names[1])) == (4, 2)
    assert sorted(names[0] + names[1]) == [f'{i:06d}.bin' for i in range(1, 7)]
    with pytest.raises(ValueError, match='val_ratio'):
        split_scenes(10, 1.0, 0)


def test_workers_do_not_change_output(written, tmp_path):
    make_synthetic_sunrgbd.main([
        '--out-dir', str(tmp_path), '--num-scenes', '6', '--seed', '3',
        '--height', str(H), '--width', str(W), '--min-points', '30',
        '--val-ratio', '0.34', '--workers', '2'
    ])
    for name in ('sunrgbd_infos_train.pkl', 'sunrgbd_infos_val.pkl'):
        with open(osp.join(written, name), 'rb') as f1, \
                open(osp.join(tmp_path, name), 'rb') as f2:
            assert pickle.load(f1) == pickle.load(f2), name
    for i in range(1, 7):
        with open(osp.join(written, 'points', f'{i:06d}.bin'), 'rb') as f1, \
                open(osp.join(tmp_path, 'points', f'{i:06d}.bin'), 'rb') as f2:
            assert f1.read() == f2.read(), i


def test_bad_arguments():
    with pytest.raises(SystemExit):
        make_synthetic_sunrgbd.parse_args(['--num-scenes', '0'])


def test_objects_in_boxes_and_classes_present():
    seen = set()
    for i, primary in enumerate(plan_scenes(12, 0)):
        info, data = generate_scene(i + 1, 0, primary, H, W, min_points=30)
        pts = data['points'][:, :3].astype(np.float64)
        d2i = np.array(info['images']['CAM0']['depth2img'])
        for inst, k in zip(info['instances'], data['inst_ids']):
            seen.add(CLASSES[inst['bbox_label_3d']])
            b = np.array(inst['bbox_3d'])
            inside = points_in_rboxes(pts, b)
            own = data['point_inst'] == k
            assert inside.sum() >= 30
            # the box holds (nearly) only this object, and nearly all of it
            # (the bottom 2 cm are left out to keep floor points out)
            assert (own & inside).sum() >= 0.85 * inside.sum()
            assert (own & inside).sum() >= 0.9 * own.sum()
            # every in-box point projects inside the 2D box
            h = pts[inside] @ d2i.T
            u, v = h[:, 0] / h[:, 2], h[:, 1] / h[:, 2]
            x1, y1, x2, y2 = inst['bbox']
            assert (u >= x1).all() and (u <= x2).all()
            assert (v >= y1).all() and (v <= y2).all()
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
    assert seen == set(CLASSES)


def test_loads_through_object_dataset(written):
    from gsclip_mm.datasets.sunrgbd_object import SUNRGBDObjectDataset
    with open(osp.join(written, 'sunrgbd_infos_train.pkl'), 'rb') as f:
        infos = pickle.load(f)['data_list']
    n = sum(len(i['instances']) for i in infos)
    ds = SUNRGBDObjectDataset(ann_file='sunrgbd_infos_train.pkl',
                              data_root=written, pipeline=[])
    assert len(ds) == n  # every object has >= 30 points, none is dropped
    names = [CLASSES[inst['bbox_label_3d']] for i in infos
             for inst in i['instances']]
    assert sorted(ds.get_data_info(k)['class_name']
                  for k in range(len(ds))) == sorted(names)
    d = ds.get_data_info(0)
    assert osp.isfile(d['lidar_path']) and osp.isfile(d['img_path'])
