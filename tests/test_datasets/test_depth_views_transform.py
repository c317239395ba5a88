"""RenderPointDepthViews / RenderGaussianDepthViews: built from the registry, on tiny hand-made objects."""
import numpy as np
import pytest

from gsclip_mm.datasets.transforms import NormalizeGaussians
from gsclip_mm.gaussians.depth_views import CLIP_MEAN, CLIP_STD
from gsclip_mm.registry import TRANSFORMS
from gsclip_mm.utils.errors import ObjectError

DEFAULT_ARGS = dict(num_views=6, size=48, distance=1.2)


def box_points(n=6000, seed=0):
    """[n, 6] xyz rgb on the surface of a 1.2 x 0.6 x 1.0 box centred at (2, 3, 1) (metres, as a scan)."""
    rng = np.random.RandomState(seed)
    half = np.array([0.6, 0.3, 0.5])
    p = (rng.rand(n, 3) * 2 - 1) * half
    axis = rng.randint(0, 3, n)
    p[np.arange(n), axis] = np.where(rng.rand(n) < 0.5, -1, 1) * half[axis]
    return np.concatenate([p + [2.0, 3.0, 1.0], rng.rand(n, 3)], 1).astype(np.float32)


def gaussians_at(points, scale=0.01, opacity=0.9):
    g = np.zeros((len(points), 14), np.float32)
    g[:, :6] = points[:, :6]
    g[:, 6] = opacity
    g[:, 7:10] = scale
    g[:, 10] = 1.0
    return g


def raw_image(views):
    """[V, 3, S, S] CLIP inputs -> the grey [V, S, S] before mean/std."""
    return views[:, 0] * CLIP_STD[0] + CLIP_MEAN[0]


def silhouette(views):
    return raw_image(views) < 0.999  # background is exactly 1


@pytest.mark.parametrize('name, source', [('RenderPointDepthViews', 'points'),
                                          ('RenderGaussianDepthViews', 'gaussians')])
def test_output_shape_dtype_and_range(name, source):
    pts = box_points()
    results = dict(points=pts, gaussians=gaussians_at(pts))
    t = TRANSFORMS.build(dict(type=name, **DEFAULT_ARGS))
    out = t(results)
    views = out['depth_views']
    assert views.shape == (6, 3, 48, 48) and views.dtype == np.float32
    assert out['depth_views_distance'] == 1.2 and 'depth_views_pair' not in out
    raw = raw_image(views)
    np.testing.assert_allclose(views[:, 1] * CLIP_STD[1] + CLIP_MEAN[1], raw, atol=1e-6)  # grey
    fg = silhouette(views)
    assert fg.any((1, 2)).all()  # every view sees the object
    for v in range(6):
        assert raw[v][fg[v]].min() == pytest.approx(0.0, abs=1e-6)
        assert raw[v][fg[v]].max() == pytest.approx(200 / 255, abs=1e-6)
        np.testing.assert_allclose(raw[v][~fg[v]], 1.0, atol=1e-6)
    assert name in repr(t) and 'distance=1.2' in repr(t)
    assert TRANSFORMS.build(dict(type=name, num_views=4, size=32))(dict(results))['depth_views'].shape == (4, 3, 32, 32)


def test_points_and_gaussians_of_one_object_overlap():
    """Raw points (metres) against Gaussians already normalised by NormalizeGaussians (centroid centre):
    both transforms renormalise by the same rule, so the silhouettes coincide."""
    pts = box_points(20000)
    results = NormalizeGaussians()(dict(points=pts, gaussians=gaussians_at(pts, scale=0.005)))
    assert not np.allclose(results['gaussians'][:, :3], pts[:, :3])
    args = dict(DEFAULT_ARGS, size=96)
    p = silhouette(TRANSFORMS.build(dict(type='RenderPointDepthViews', **args))(dict(results))['depth_views'])
    g = silhouette(TRANSFORMS.build(dict(type='RenderGaussianDepthViews', **args))(dict(results))['depth_views'])
    iou = (p & g).sum((1, 2)) / (p | g).sum((1, 2))
    assert (iou > 0.9).all(), iou  # 0.93-0.97 at 96 px: a pixel of border difference (see test_depth_views.py)


def test_point_views_can_render_the_gaussians_centres():
    pts = box_points()
    a = TRANSFORMS.build(dict(type='RenderPointDepthViews', **DEFAULT_ARGS))(dict(points=pts))['depth_views']
    b = TRANSFORMS.build(dict(type='RenderPointDepthViews', key='gaussians', **DEFAULT_ARGS))(
        dict(gaussians=gaussians_at(pts)))['depth_views']
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('name', ['RenderPointDepthViews', 'RenderGaussianDepthViews'])
def test_pair_distance_jitter(name):
    pts = box_points(1000)
    source = dict(points=pts, gaussians=gaussians_at(pts, scale=0.02))
    t0 = TRANSFORMS.build(dict(type=name, **DEFAULT_ARGS))
    assert 'depth_views_pair' not in t0(dict(source))  # j = 0: no pair
    t = TRANSFORMS.build(dict(type=name, pair_distance_jitter=0.1, **dict(DEFAULT_ARGS, size=16)))
    np.random.seed(0)
    ratios = []
    for _ in range(40):
        out = t(dict(source))
        ratios.append(out['depth_views_pair_distance'] / 1.2)
        assert out['depth_views_pair'].shape == out['depth_views'].shape
    ratios = np.array(ratios)
    assert ratios.min() >= 0.9 and ratios.max() <= 1.1
    assert ratios.min() < 0.97 and ratios.max() > 1.03  # it does vary
    np.random.seed(0)
    again = t(dict(source))['depth_views_pair_distance']
    assert again == pytest.approx(ratios[0] * 1.2)  # numpy's global RNG: seeded runs repeat


def test_pair_distance_zooms_the_orthographic_view():
    """The pair's front-view silhouette is narrower by distance / pair_distance (CLIP2Point's zoom)."""
    pts = box_points(20000)
    t = TRANSFORMS.build(dict(type='RenderPointDepthViews', pair_distance_jitter=0.3, num_views=6, size=128,
                              distance=1.5))
    np.random.seed(4)  # draws 1.28
    out = t(dict(points=pts))
    width = lambda v: silhouette(v)[0].any(0).sum()  # noqa: E731  front view's columns with the object
    ratio = out['depth_views_pair_distance'] / 1.5
    assert abs(ratio - 1) > 0.05  # this seed draws a real change
    assert width(out['depth_views_pair']) == pytest.approx(width(out['depth_views']) / ratio, abs=2)


@pytest.mark.parametrize('name, key, bad', [
    ('RenderPointDepthViews', 'points', np.zeros((0, 6), np.float32)),
    ('RenderPointDepthViews', 'points', np.array([[0, 0, np.nan, 0, 0, 0], [1, 1, 1, 0, 0, 0]], np.float32)),
    ('RenderGaussianDepthViews', 'gaussians', np.zeros((5, 6), np.float32)),
    ('RenderGaussianDepthViews', 'gaussians', np.full((5, 14), np.inf, np.float32)),
])
def test_bad_objects_raise_object_error_naming_the_object(name, key, bad):
    t = TRANSFORMS.build(dict(type=name, **DEFAULT_ARGS))
    with pytest.raises(ObjectError, match='scene_7.jpg#3'):
        t({key: bad, 'img_path': 'scene_7.jpg', 'instance_idx': 3})
    with pytest.raises(ObjectError, match='#3'):
        t({'img_path': 'scene_7.jpg', 'instance_idx': 3})  # missing key


@pytest.mark.parametrize('kwargs', [dict(distance=1.0), dict(distance=1.1, pair_distance_jitter=0.1),
                                    dict(num_views=0), dict(pair_distance_jitter=1.0), dict(mean=(0.5, ))])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        TRANSFORMS.build(dict(type='RenderPointDepthViews', **kwargs))
