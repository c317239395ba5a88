"""The one rotated-box point test, shared by SUNRGBDObjectDataset, LoadObjectPoints and the synthetic generator."""
import os.path as osp

import numpy as np
import pytest

from gsclip_mm.datasets.utils import load_infos, load_points
from gsclip_mm.structures.boxes import points_in_rboxes

SAMPLE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'sunrgbd_sample')


def _reference(points, boxes):
    """Every point against every box in the box frame, no pre-filter: ``[B, N]``."""
    d = points[None, :, :3].astype(np.float64) - boxes[:, None, :3].astype(np.float64)  # [B, N, 3]
    yaw = boxes[:, 6].astype(np.float64)[:, None]
    local_x = d[..., 0] * np.cos(yaw) + d[..., 1] * np.sin(yaw)
    local_y = -d[..., 0] * np.sin(yaw) + d[..., 1] * np.cos(yaw)
    half = boxes[:, None, 3:6].astype(np.float64) / 2
    return (np.abs(local_x) <= half[..., 0]) & (np.abs(local_y) <= half[..., 1]) & (np.abs(d[..., 2]) <= half[..., 2])


def test_points_in_rboxes_hand_made():
    # Box centred at (1, 2, 0), 2 x 1 x 1, turned 90 degrees: its long side runs along world y.
    box = np.array([1, 2, 0, 2, 1, 1, np.pi / 2], dtype=np.float32)
    pts = np.array([[1, 2.9, 0.4],   # 0.9 along the long side (half 1): inside
                    [1.9, 2, 0],     # 0.9 across the short side (half 0.5): outside
                    [1.4, 2, 0],     # 0.4 across: inside
                    [1, 2, 0.6]],    # above the top face
                   dtype=np.float32)
    np.testing.assert_array_equal(points_in_rboxes(pts, box), [True, False, True, False])  # one box: [N]
    np.testing.assert_array_equal(points_in_rboxes(pts, box.tolist()), [True, False, True, False])  # as in infos
    boxes = np.stack([box, np.array([0, 0, 0, 10, 10, 10, 0], np.float32)])
    np.testing.assert_array_equal(points_in_rboxes(pts, boxes), [[True, False, True, False], [True] * 4])
    assert points_in_rboxes(pts, boxes[:1]).shape == (1, 4)  # [1, 7] stays a batch of one
    assert points_in_rboxes(pts, np.zeros((0, 7), np.float32)).shape == (0, 4)
    with pytest.raises(AssertionError, match=r'\[B, 7\] or \[7\]'):
        points_in_rboxes(pts, np.zeros(6))


def test_points_in_rboxes_on_real_scene():
    """The bed of the real scene 000017 holds 18117 points with the counter-clockwise yaw
    (9106 with the opposite sign), whatever the points' float type."""
    info = load_infos(osp.join(SAMPLE, 'sunrgbd_infos_val.pkl'))['data_list'][0]
    pts = load_points(osp.join(SAMPLE, 'points', '000017.bin'), 6)  # float32 [N, 6]
    bed = [i['bbox_3d'] for i in info['instances'] if i['bbox_label_3d'] == 0][0]
    assert points_in_rboxes(pts, bed).sum() == 18117
    np.testing.assert_array_equal(points_in_rboxes(pts[:, :3].astype(np.float64), bed), points_in_rboxes(pts, bed))
    flipped = np.array(bed, np.float64) * [1, 1, 1, 1, 1, 1, -1]
    assert points_in_rboxes(pts, flipped).sum() == 9106


@pytest.mark.parametrize('num_boxes', [1, 7])
def test_points_in_rboxes_matches_reference(num_boxes):
    rng = np.random.default_rng(num_boxes)
    pts = rng.uniform(-3, 3, (4000, 6)).astype(np.float32)
    boxes = np.concatenate([rng.uniform(-2, 2, (num_boxes, 3)), rng.uniform(0.1, 3, (num_boxes, 3)),
                            rng.uniform(-4, 4, (num_boxes, 1))], 1).astype(np.float32)
    got = points_in_rboxes(pts, boxes)
    np.testing.assert_array_equal(got, _reference(pts, boxes))
    assert got.any(1).all()  # every box holds points: the comparison is not vacuous


def test_load_points_errors_name_the_file(tmp_path):
    path = tmp_path / 'a.bin'
    np.arange(12, dtype=np.float32).tofile(path)
    np.testing.assert_array_equal(load_points(str(path), 6), np.arange(12, dtype=np.float32).reshape(2, 6))
    with pytest.raises(ValueError, match='a.bin'):
        load_points(str(path), 5)
    with pytest.raises(FileNotFoundError, match='missing.bin'):
        load_points(str(tmp_path / 'missing.bin'), 6)
