"""SUNRGBDObjectDataset and the loading transforms on the real scene 000017 of data/sunrgbd_sample."""
import copy
import hashlib
import os.path as osp
import pickle
import shutil
from unittest import mock

import cv2
import numpy as np
import pytest
from mmengine.dataset import ClassBalancedDataset

from gsclip_mm.registry import DATASETS, TRANSFORMS
from gsclip_mm.structures import GS_DIM, GS_QUAT, GS_RGB, GS_SCALE, GS_XYZ

# One real SUN RGB-D scene (mmdetection3d's demo scene 000017), shipped with the tests.
SAMPLE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'sunrgbd_sample')

KEYS = {'sample_idx', 'instance_idx', 'lidar_path', 'num_pts_feats', 'img_path', 'depth2img', 'img_shape', 'bbox',
        'bbox_3d', 'gt_label', 'class_name', 'img_sha256', 'points_sha256', 'scene_points_sha256'}
DEFAULT_ARGS = dict(type='SUNRGBDObjectDataset', ann_file='sunrgbd_infos_val.pkl')


def build(**kwargs):
    cfg = dict(DEFAULT_ARGS, data_root=SAMPLE)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def sample_infos():
    with open(osp.join(SAMPLE, 'sunrgbd_infos_val.pkl'), 'rb') as f:
        return pickle.load(f)


def write_infos(tmp_path, infos, name='infos.pkl'):
    path = tmp_path / name
    with open(path, 'wb') as f:
        pickle.dump(infos, f)
    return str(path)


def pool(tmp_path, labels):
    """An infos pkl with ``len(labels) // 2`` copies of scene 000017, object labels set to ``labels``."""
    infos = sample_infos()
    scene = infos['data_list'][0]
    infos['data_list'] = []
    for s in range(len(labels) // 2):
        info = copy.deepcopy(scene)
        info['sample_idx'] = s
        for j, inst in enumerate(info['instances']):
            inst['bbox_label_3d'] = inst['bbox_label'] = labels[2 * s + j]
        infos['data_list'].append(info)
    return write_infos(tmp_path, infos)


def build_pool(ann_file, **kwargs):
    return build(ann_file=ann_file, data_prefix=dict(pts=osp.join(SAMPLE, 'points'),
                                                     img=osp.join(SAMPLE, 'sunrgbd_trainval/image')), **kwargs)


def project(points, depth2img):
    """``[N, 3]`` depth coords -> ``[N, 2]`` pixels."""
    uvw = points[:, :3].astype(np.float64) @ np.asarray(depth2img).T
    return uvw[:, :2] / uvw[:, 2:3]


# ---------------------------------------------------------------- the real scene
def test_real_scene_objects_and_keys():
    ds = build()
    assert len(ds) == 2
    assert ds.metainfo['classes'] == ('bed', 'table', 'sofa', 'chair', 'toilet', 'desk', 'dresser', 'night_stand',
                                      'bookshelf', 'bathtub')
    infos = [ds[i] for i in range(2)]
    for info in infos:
        assert set(info) == KEYS
        assert info['sample_idx'] == 17  # the scene's, not the dataset index MMEngine would write
        assert info['num_pts_feats'] == 6 and info['img_shape'] == (530, 730)
        assert info['depth2img'].dtype == np.float64 and info['depth2img'].shape == (3, 3)
        assert info['bbox'].dtype == np.float32 and info['bbox_3d'].dtype == np.float32
        assert osp.isfile(info['lidar_path']) and osp.isfile(info['img_path'])
    by_name = {i['class_name']: i for i in infos}
    assert set(by_name) == {'bed', 'night_stand'}
    assert (by_name['bed']['gt_label'], by_name['bed']['instance_idx']) == (0, 1)
    assert (by_name['night_stand']['gt_label'], by_name['night_stand']['instance_idx']) == (7, 0)
    assert ds.get_cat_ids(0) == [infos[0]['gt_label']]
    assert ds.filter_counts == dict(total=2, kept=2, out_of_split=0, ignored_class=0, invalid_box=0, small_box=0,
                                    empty=0, too_few_points=0, unfittable=0)
    # the first author's filter: the night stand's box is 132 x 128 px, the bed's 461 x 374 px
    small = build(min_box_side=200)
    assert len(small) == 1 and small[0]['class_name'] == 'bed' and small.filter_counts['small_box'] == 1
    # the content hashes: of the image file's bytes, and of exactly what LoadObjectPoints gives
    with open(infos[0]['img_path'], 'rb') as f:
        assert infos[0]['img_sha256'] == infos[1]['img_sha256'] == hashlib.sha256(f.read()).hexdigest()
    load = TRANSFORMS.build(dict(type='LoadObjectPoints'))
    for info in infos:
        pts = load(dict(info))['points']
        assert info['points_sha256'] == hashlib.sha256(str(pts.shape).encode() + pts.tobytes()).hexdigest()
    assert infos[0]['points_sha256'] != infos[1]['points_sha256']
    scene = np.fromfile(infos[0]['lidar_path'], dtype=np.float32).reshape(-1, 6)  # every point of the scene
    assert infos[0]['scene_points_sha256'] == infos[1]['scene_points_sha256'] == hashlib.sha256(
        str(scene.shape).encode() + scene.tobytes()).hexdigest()


def test_real_scene_points_project_inside_2d_boxes():
    ds = build()
    load = TRANSFORMS.build(dict(type='LoadObjectPoints'))
    counts = {}
    for i in range(len(ds)):
        res = load(ds[i])
        pts = res['points']
        assert pts.dtype == np.float32 and pts.shape[1] == 6
        assert pts[:, 3:].min() >= 0 and pts[:, 3:].max() <= 1
        uv = project(pts, res['depth2img'])
        x1, y1, x2, y2 = res['bbox']
        # every point lands inside the 2D box (1 px slack for the box's rounding) ...
        assert (uv[:, 0] >= x1 - 1).all() and (uv[:, 0] <= x2 + 1).all()
        assert (uv[:, 1] >= y1 - 1).all() and (uv[:, 1] <= y2 + 1).all()
        # ... and they fill it: with yaw negated the bed's points span only 58 % of its width.
        assert np.ptp(uv[:, 0]) > 0.8 * (x2 - x1)
        counts[res['class_name']] = len(pts)
    assert counts['bed'] > 1000 and 100 < counts['night_stand'] < 1000  # thousands vs hundreds
    assert counts == {'bed': 18117, 'night_stand': 951}


def test_load_object_image_rgb_and_crop():
    ds = build()
    info = next(ds[i] for i in range(2) if ds[i]['class_name'] == 'night_stand')
    res = TRANSFORMS.build(dict(type='LoadObjectImage'))(info)
    bgr = cv2.imread(info['img_path'])
    assert res['img'].dtype == np.uint8 and res['img'].shape == (530, 730, 3)
    np.testing.assert_array_equal(res['img'], bgr[..., ::-1])  # RGB order
    # bbox 54.9 233.1 187.0 360.7 in SUN RGB-D's 1-based pixels (centre of 0-based column j at j + 1) -> 0-based
    # 54.4 232.6 186.5 360.2 -> every pixel it touches: columns 54..186, rows 232..360
    np.testing.assert_array_equal(res['img_crop'], bgr[232:361, 54:187, ::-1])


def test_full_pipeline_packs_gaussians_and_the_crop_identity():

    def points_to_gaussians(results):  # stand-in for PointsToGaussians: identity rotation, fixed scale
        pts = results['points']
        g = np.zeros((len(pts), GS_DIM), np.float32)
        g[:, GS_XYZ], g[:, GS_RGB], g[:, GS_SCALE], g[:, GS_QUAT] = pts[:, :3], pts[:, 3:], 0.01, (1, 0, 0, 0)
        results['gaussians'] = g
        return results

    pipeline = [dict(type='LoadObjectPoints'), dict(type='LoadObjectImage'), points_to_gaussians,
                dict(type='SampleGaussians', num_points=64), dict(type='NormalizeGaussians'),
                dict(type='PackGSCLIPInputs')]
    ds = build(pipeline=pipeline, test_mode=True)
    out = ds[0]
    assert out['inputs']['gaussians'].shape == (64, GS_DIM)
    radius = out['inputs']['gaussians'][:, GS_XYZ].norm(dim=1)
    assert abs(radius.max().item() - 1) < 1e-5
    # the crop reaches the model as a CLIP embedding (LoadCLIPImageEmbedding, tests/test_datasets/test_clip_image.py),
    # never as pixels: the pack names it by its content
    assert 'img' not in out['inputs']
    ds_meta = out['data_samples'].metainfo
    assert ds_meta['class_name'] == 'night_stand' and ds_meta['sample_idx'] == 17 and ds_meta['instance_idx'] == 0
    assert ds_meta['crop_key'].endswith('000017.jpg|54.95,233.09,187.01,360.72')
    assert out['data_samples'].gt_label.tolist() == [7]


# ---------------------------------------------------------------- classes, split, balance
def test_class_subset_and_ann_classes(tmp_path):
    ds = build(metainfo=dict(classes=['night_stand', 'bed']))
    assert [(ds[i]['class_name'], ds[i]['gt_label']) for i in range(2)] == [('night_stand', 0), ('bed', 1)]
    ds = build(metainfo=dict(classes=['bed']))
    assert len(ds) == 1 and ds.filter_counts['ignored_class'] == 1
    with pytest.raises(ValueError, match='lamp'):
        build(metainfo=dict(classes=['bed', 'lamp']))
    # A 37-class style label space named in the infos' metainfo ({name: index}) or as an argument.
    infos = sample_infos()
    names = [f'c{i}' for i in range(37)]
    names[0], names[7] = 'wall', 'cabinet'
    infos['metainfo']['categories'] = {n: i for i, n in enumerate(names)}
    ds = build(ann_file=write_infos(tmp_path, infos), data_prefix=dict(pts=osp.join(SAMPLE, 'points'),
                                                                       img=osp.join(SAMPLE, 'sunrgbd_trainval/image')))
    assert len(ds.metainfo['classes']) == 37
    assert sorted(ds[i]['class_name'] for i in range(2)) == ['cabinet', 'wall']
    ds = build(ann_classes=names)
    assert sorted(ds[i]['class_name'] for i in range(2)) == ['cabinet', 'wall']
    # A label beyond the label space (a 37-class file read as 10 classes) is an error, not a silent drop.
    infos = sample_infos()
    infos['data_list'][0]['instances'][1]['bbox_label_3d'] = 23
    with pytest.raises(ValueError, match=r'instances\[1\]: label 23 is outside the 10-class'):
        build_pool(write_infos(tmp_path, infos, 'c.pkl'))


def test_split_by_scene_9_to_1_with_val_from_train(tmp_path):
    ann = pool(tmp_path, [0, 7] * 10)  # 10 scenes (sample_idx 0..9), 2 objects each

    def objects(split, seed=3, **kwargs):
        ds = build_pool(ann, split=split, split_seed=seed, **kwargs)
        return [(ds[i]['sample_idx'], ds[i]['instance_idx']) for i in range(len(ds))]

    train, val, test = objects('train'), objects('val'), objects('test')
    # 9:1 by scene: 9 training scenes (1 of them held out as val), 1 test scene
    assert (len(train), len(val), len(test)) == (16, 2, 2)
    scenes = [{s for s, _ in split} for split in (train, val, test)]
    assert not (scenes[0] & scenes[1] or scenes[0] & scenes[2] or scenes[1] & scenes[2])  # no scene on two sides
    assert set(train) | set(val) | set(test) == {(s, j) for s in range(10) for j in range(2)}
    assert objects('train') == train and objects('test') == test  # deterministic
    assert objects('test', val_ratio=0.3) == test  # the test split does not depend on the val share
    assert objects('test', seed=4) != test
    # The cut comes before filtering: stricter min_points keeps a subset of the same split.
    strict = objects('train', min_points=1000)  # only beds (instance 1, 18117 points) pass
    assert strict == [o for o in train if o[1] == 1]
    # The literal reading, by object: 18 training objects, 2 test objects, scenes may be shared.
    by_obj = [objects(split, split_by='object', val_ratio=0.0) for split in ('train', 'val', 'test')]
    assert [len(o) for o in by_obj] == [18, 0, 2] and not set(by_obj[0]) & set(by_obj[2])


def test_class_balanced_dataset_evens_out(tmp_path):
    ann = pool(tmp_path, [0] * 8 + [3] * 2)  # 8 beds, 2 chairs
    ds = build_pool(ann)
    labels = [ds.get_cat_ids(i)[0] for i in range(len(ds))]
    assert sorted(labels) == [0] * 8 + [3] * 2
    # MMEngine's repeat factor max(1, sqrt(thr / freq)): chairs sqrt(0.5 / 0.2) = 1.58 -> 2 copies, beds 1.
    balanced = ClassBalancedDataset(ds, oversample_thr=0.5)
    got = [balanced.get_cat_ids(i)[0] for i in range(len(balanced))]
    assert (got.count(0), got.count(3)) == (8, 4)
    # Built from a config in our scope, the same.
    cfg = dict(type='ClassBalancedDataset', oversample_thr=0.5,
               dataset=dict(DEFAULT_ARGS, type='gsclip_mm.SUNRGBDObjectDataset', data_root=SAMPLE, ann_file=ann,
                            data_prefix=dict(pts=osp.join(SAMPLE, 'points'),
                                             img=osp.join(SAMPLE, 'sunrgbd_trainval/image'))))
    balanced = DATASETS.build(cfg)
    assert sorted(balanced.get_cat_ids(i)[0] for i in range(len(balanced))) == [0] * 8 + [3] * 4


# ---------------------------------------------------------------- filtering and bad input
def test_min_points_empty_and_degenerate_boxes_counted_and_logged(tmp_path):
    with mock.patch('gsclip_mm.datasets.sunrgbd_object.print_log') as log:
        ds = build(min_points=1000)
    assert len(ds) == 1 and ds[0]['class_name'] == 'bed'
    assert ds.filter_counts['too_few_points'] == 1
    assert 'fewer than 1000 points' in log.call_args[0][0] and '1 with fewer' in log.call_args[0][0]

    infos = sample_infos()
    infos['data_list'][0]['instances'][0]['bbox_3d'][0] += 100.0  # night stand's box moved off the scan
    ds = build_pool(write_infos(tmp_path, infos))
    assert len(ds) == 1 and ds.filter_counts['empty'] == 1
    infos = sample_infos()
    infos['data_list'][0]['instances'][0]['bbox_3d'][3] = 0.0  # zero-width 3D box
    infos['data_list'][0]['instances'][1]['bbox'] = [800, 10, 900, 50]  # 2D box right of the 730 px image
    ds = build_pool(write_infos(tmp_path, infos, 'b.pkl'))
    assert len(ds) == 0 and ds.filter_counts['invalid_box'] == 2


@pytest.mark.parametrize('drop, expect', [
    (('data_list', ), "'data_list'"),
    (('images', 'CAM0', 'depth2img'), r"data_list\[0\] has no key 'images.CAM0.depth2img'"),
    (('lidar_points', 'lidar_path'), "'lidar_points.lidar_path'"),
    (('instances', 1, 'bbox_3d'), r"instances\[1\] has no key 'bbox_3d'"),
])
def test_malformed_infos_name_the_missing_key(tmp_path, drop, expect):
    infos = sample_infos()
    node = infos if drop[0] == 'data_list' else infos['data_list'][0]
    for k in drop[:-1]:
        node = node[k]
    del node[drop[-1]]
    with pytest.raises(KeyError, match=expect):
        build_pool(write_infos(tmp_path, infos))


def test_missing_or_broken_files_are_named(tmp_path):
    # Points file missing / truncated.
    with pytest.raises(FileNotFoundError, match='000017.bin'):
        build(data_prefix=dict(pts=str(tmp_path), img=osp.join(SAMPLE, 'sunrgbd_trainval/image')))
    (tmp_path / '000017.bin').write_bytes(b'\0' * 10)
    with pytest.raises(ValueError, match='000017.bin'):
        build(data_prefix=dict(pts=str(tmp_path), img=osp.join(SAMPLE, 'sunrgbd_trainval/image')))
    # Image missing at init, and missing / corrupt when loaded.
    with pytest.raises(FileNotFoundError, match='000017.jpg'):
        build(data_prefix=dict(pts=osp.join(SAMPLE, 'points'), img=str(tmp_path)))
    info = build()[0]
    load_img = TRANSFORMS.build(dict(type='LoadObjectImage'))
    with pytest.raises(FileNotFoundError, match='nothere.jpg'):
        load_img(dict(info, img_path=str(tmp_path / 'nothere.jpg')))
    (tmp_path / 'bad.jpg').write_bytes(b'not a jpeg')
    with pytest.raises(ValueError, match='bad.jpg'):
        load_img(dict(info, img_path=str(tmp_path / 'bad.jpg')))
    shutil.copy(info['img_path'], tmp_path / 'ok.jpg')
    with pytest.raises(ValueError, match='530x730|no area'):
        load_img(dict(info, img_path=str(tmp_path / 'ok.jpg'), bbox=np.array([740, 0, 800, 10], np.float32)))
    # A box with no points at load time (the file changed after init) is an error, never an empty array.
    box = info['bbox_3d'].copy()
    box[0] += 100
    with pytest.raises(ValueError, match='no points of .*000017.bin'):
        TRANSFORMS.build(dict(type='LoadObjectPoints'))(dict(info, bbox_3d=box))


def test_bad_arguments():
    with pytest.raises(ValueError, match='split'):
        build(split='validation')
    with pytest.raises(ValueError, match='split_by'):
        build(split='train', split_by='room')
    with pytest.raises(ValueError, match='val_ratio'):
        build(split='train', val_ratio=1.0)
    with pytest.raises(ValueError, match='split_ratio'):
        build(split='train', split_ratio=1.0)
