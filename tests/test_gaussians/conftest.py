"""The real SUN RGB-D sample scene, read directly (numpy / pickle / mmcv), for the Gaussian tests."""
import os.path as osp
import pickle

import mmcv
import numpy as np
import pytest

from gsclip_mm.structures.boxes import points_in_rboxes

# The real scene shipped with the tests (tests/data/sunrgbd_sample).
SAMPLE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'sunrgbd_sample')


@pytest.fixture(scope='session')
def scene():
    """dict(depth2img [3, 3], img [H, W, 3] RGB, points [N, 6] (the whole scene),
    objects=[dict(points [N, 6], bbox [4], label)])."""
    with open(osp.join(SAMPLE, 'sunrgbd_infos_val.pkl'), 'rb') as f:
        info = pickle.load(f)['data_list'][0]
    pts = np.fromfile(osp.join(SAMPLE, 'points', info['lidar_points']['lidar_path']), dtype=np.float32).reshape(-1, 6)
    img = mmcv.imread(osp.join(SAMPLE, 'sunrgbd_trainval', 'image', info['images']['CAM0']['img_path']),
                      channel_order='rgb')
    objects = [dict(points=pts[points_in_rboxes(pts, inst['bbox_3d'])], bbox=np.asarray(inst['bbox'], np.float32),
                    label=inst['bbox_label_3d']) for inst in info['instances']]
    return dict(depth2img=np.asarray(info['images']['CAM0']['depth2img']), img=img, points=pts, objects=objects)


@pytest.fixture
def unfittable_bed(tmp_path):
    """Path of the sample scene's infos with the bed's 2D box moved to the top-right corner, where none of its
    points project: the dataset keeps it (the box is valid), fitting fails with FitInputError."""
    with open(osp.join(SAMPLE, 'sunrgbd_infos_val.pkl'), 'rb') as f:
        infos = pickle.load(f)
    infos['data_list'][0]['instances'][1]['bbox'] = [690.0, 5.0, 725.0, 40.0]
    ann = tmp_path / 'bad_bed.pkl'
    ann.write_bytes(pickle.dumps(infos))
    return str(ann)
