"""Scene-level fitting (the paper's mode): the scene input and its camera, dropped points, pruning, cutting."""
import os.path as osp
import pickle

import numpy as np
import pytest
from test_fitting import K, synthetic_object  # noqa: I100  (pytest puts this folder on sys.path)

from gsclip_mm.gaussians import FitInputError, FitSettings, cut_object, fit_batch, prepare_scene_fit_input
from gsclip_mm.gaussians.fitting import subsample_points
from gsclip_mm.structures import GS_OPACITY, GS_XYZ
from gsclip_mm.structures.boxes import points_in_rboxes

SAMPLE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'sunrgbd_sample')

SCENE = dict(mode='scene', num_steps=20, opacity_reset_interval=0)


def test_scene_target_is_the_image_and_its_camera_puts_every_point_on_its_own_pixel(scene):
    """The exact known answer of SUN RGB-D's colours (each point's colour is the pixel it projects to),
    through the scene input's K and viewmat at full resolution: any camera offset breaks it."""
    s = FitSettings.build(SCENE, scene_scale=1.0)
    inp = prepare_scene_fit_input(scene['points'], scene['img'], scene['depth2img'], s, 'sample')
    H, W = scene['img'].shape[:2]
    assert inp.target.shape == (H, W, 3) and inp.mask.all()
    np.testing.assert_array_equal(inp.target, scene['img'].astype(np.float32) / 255)
    assert inp.xyz.shape[0] == scene['points'].shape[0] and inp.counts['subsampled'] == 0
    cam = inp.xyz.astype(np.float64) @ inp.viewmat[:3, :3].T
    uvw = cam @ inp.K.T
    col, row = np.floor(uvw[:, :2] / uvw[:, 2:]).astype(int).T  # gsplat: pixel i covers [i, i + 1)
    assert np.abs(scene['img'][row, col] / 255.0 - inp.rgb).max() < 1e-6
    half = prepare_scene_fit_input(scene['points'], scene['img'], scene['depth2img'],
                                   FitSettings.build(SCENE, scene_scale=0.5), 'sample')
    assert half.target.shape == (round(H / 2), round(W / 2), 3)
    np.testing.assert_allclose(half.K[:2, :2], inp.K[:2, :2] / 2)


def test_dropped_points_are_counted():
    pts, img = synthetic_object(48)
    pts[3, 0] = np.nan
    pts[[5, 6], 2] = -1.0  # behind the camera
    inp = prepare_scene_fit_input(pts, img, K, FitSettings.build(SCENE), 'scene9')
    assert inp.counts == dict(nonfinite=1, behind_camera=2, outside_image=0, subsampled=0)
    assert inp.xyz.shape[0] == 45


@pytest.mark.parametrize('case,match', [
    ('behind', 'all 48 finite points lie behind the camera'),
    ('small_image', 'points project outside the 20x20 image'),
    ('no_points', 'at least 2 points'),
    ('degenerate_camera', 'degenerate'),
])
def test_bad_scenes_name_the_scene(case, match):
    pts, img = synthetic_object(48)
    cam = K.copy()
    if case == 'behind':
        pts[:, 2] *= -1
    elif case == 'small_image':
        img = img[:20, :20]  # the depth map's camera still sees 40 x 40 pixels
    elif case == 'no_points':
        pts = pts[:1]
    elif case == 'degenerate_camera':
        cam = np.zeros((3, 3))
    with pytest.raises(FitInputError, match=match) as e:
        prepare_scene_fit_input(pts, img, cam, FitSettings.build(SCENE), 'scene9')
    assert 'scene9' in str(e.value)


def test_voxel_and_max_points_subsampling():
    rng = np.random.default_rng(0)
    pts = rng.random((500, 6)).astype(np.float32)
    vox = subsample_points(pts, FitSettings.build(SCENE, voxel_size=0.25))
    cells = {tuple(c) for c in np.floor(pts[:, :3] / 0.25).astype(int)}
    assert len(vox) == len(cells)  # one point per occupied voxel
    assert {tuple(c) for c in np.floor(vox[:, :3] / 0.25).astype(int)} == cells
    first = [next(i for i, p in enumerate(pts) if tuple(np.floor(p[:3] / 0.25).astype(int)) == c) for c in cells]
    np.testing.assert_array_equal(vox, pts[np.sort(first)])  # the first point of each voxel, file order
    capped = subsample_points(pts, FitSettings.build(SCENE, max_points=100))
    assert capped.shape == (100, 6) and np.array_equal(capped, subsample_points(pts, FitSettings.build(
        SCENE, max_points=100)))
    assert len({tuple(r) for r in capped} - {tuple(r) for r in pts}) == 0


def test_pruning_removes_exactly_the_gaussians_under_the_threshold():
    pts, img = synthetic_object(48)
    s = FitSettings.build(SCENE, prune_opacity=0.0)
    inp = prepare_scene_fit_input(pts, img, K, s, 'scene')
    full = fit_batch([inp], s)[0]
    assert full.pruned == 0 and len(full.gaussians) == 48
    threshold = float(np.median(full.gaussians[:, GS_OPACITY.start]))  # prune about half
    pruned = fit_batch([inp], FitSettings.build(s, prune_opacity=threshold))[0]
    keep = full.gaussians[:, GS_OPACITY.start] >= threshold
    assert pruned.pruned == int((~keep).sum()) > 0
    np.testing.assert_array_equal(pruned.gaussians, full.gaussians[keep])  # same fit, rows removed
    assert pruned.psnr < full.psnr  # the metrics are of the pruned Gaussians' render


def test_cut_object_equals_the_object_points(scene):
    """Before pruning, an object's Gaussians are exactly its points (the same box test as LoadObjectPoints)."""
    s = FitSettings.build(SCENE, num_steps=1, scene_scale=0.1, prune_opacity=0.0)
    inp = prepare_scene_fit_input(scene['points'], scene['img'], scene['depth2img'], s, 'sample')
    res = fit_batch([inp], s)[0]
    for obj, box in zip(scene['objects'], _boxes()):
        cut = cut_object(res.gaussians, box, 'obj')
        np.testing.assert_array_equal(cut[:, GS_XYZ], obj['points'][:, :3])
    with pytest.raises(FitInputError, match='obj7: no Gaussian'):
        cut_object(res.gaussians, [100.0, 100, 100, 1, 1, 1, 0], 'obj7')


def _boxes():
    with open(osp.join(SAMPLE, 'sunrgbd_infos_val.pkl'), 'rb') as f:
        return [np.asarray(i['bbox_3d']) for i in pickle.load(f)['data_list'][0]['instances']]


def test_scene_batches_need_one_image_size():
    pts, img = synthetic_object(48)
    a = prepare_scene_fit_input(pts, img, K, FitSettings.build(SCENE), 'a')
    b = prepare_scene_fit_input(pts, img, K, FitSettings.build(SCENE, scene_scale=0.5), 'b')
    with pytest.raises(ValueError, match='one target size per batch'):
        fit_batch([a, b], FitSettings.build(SCENE))


def test_points_in_box_helper_is_shared():
    # cut_object uses the dataset's box test: a point on a face is inside for both
    pts = np.array([[0.5, 0, 0], [0.51, 0, 0]], np.float32)
    box = np.array([0, 0, 0, 1, 1, 1, 0], np.float32)
    g = np.zeros((2, 14), np.float32)
    g[:, :3] = pts
    assert points_in_rboxes(pts, box).tolist() == [True, False]
    assert len(cut_object(g, box)) == 1
