"""Multi-view depth rendering (gsclip_mm.gaussians.depth_views): known answers on hand-made scenes."""
import math

import open_clip
import pytest
import torch

from gsclip_mm.gaussians.depth_views import (CLIP_MEAN, CLIP_STD, DEPTH_MAX_INTENSITY, VIEW_NAMES_6, depth_to_image,
                                             normalize_object, render_gaussian_depth, render_point_depth, view_cameras)
from gsclip_mm.gaussians.rasterize import rasterize


def splat(xyz, scale, opacity=0.99):
    """Gaussians [N, 14]: axis-aligned (identity quaternion), grey."""
    xyz = torch.as_tensor(xyz, dtype=torch.float32).reshape(-1, 3)
    g = torch.zeros(len(xyz), 14)
    g[:, :3] = xyz
    g[:, 3:6] = 0.5
    g[:, 6] = opacity
    g[:, 7:10] = torch.as_tensor(scale, dtype=torch.float32)
    g[:, 10] = 1.0
    return g


def box_surface(n=4000, seed=0):
    """Points on the surface of an asymmetric box [-0.6, 0.6] x [-0.3, 0.3] x [-0.5, 0.5] (random faces)."""
    gen = torch.Generator().manual_seed(seed)
    half = torch.tensor([0.6, 0.3, 0.5])
    p = (torch.rand(n, 3, generator=gen) * 2 - 1) * half
    axis = torch.randint(0, 3, (n, ), generator=gen)
    sign = torch.randint(0, 2, (n, ), generator=gen) * 2 - 1.0
    p[torch.arange(n), axis] = sign * half[axis]
    return p


def camera_centres(viewmats):
    """[V, 3] camera centres -R^T t."""
    return -torch.einsum('vji,vj->vi', viewmats[:, :3, :3], viewmats[:, :3, 3])


def test_view_cameras_are_ring_then_top_and_bottom():
    views = view_cameras(6, 2.0)
    assert views.shape == (6, 4, 4) and views.dtype == torch.float32
    rot = views[:, :3, :3]
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3).expand(6, 3, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(6))
    # front (-y, the sensor's side), right (+x), back, left, top (+z), bottom: z is up in SUN RGB-D's depth frame
    expected = torch.tensor([[0, -2, 0], [2, 0, 0], [0, 2, 0], [-2, 0, 0], [0, 0, 2], [0, 0, -2]], dtype=torch.float32)
    torch.testing.assert_close(camera_centres(views), expected, atol=1e-6, rtol=0)
    assert VIEW_NAMES_6 == ('front', 'right', 'back', 'left', 'top', 'bottom')
    # every camera looks at the origin: it is at depth `distance`
    torch.testing.assert_close(views[:, 2, 3], torch.full((6, ), 2.0))


@pytest.mark.parametrize('num_views, ring', [(1, 1), (2, 2), (3, 1), (8, 6), (10, 8)])
def test_view_counts(num_views, ring):
    centres = camera_centres(view_cameras(num_views, 1.5))
    assert centres.shape == (num_views, 3)
    torch.testing.assert_close(centres.norm(dim=1), torch.full((num_views, ), 1.5))
    assert torch.allclose(centres[:ring, 2], torch.zeros(ring), atol=1e-6)  # the ring is horizontal
    if num_views >= 3:
        torch.testing.assert_close(centres[ring:], torch.tensor([[0, 0, 1.5], [0, 0, -1.5]]), atol=1e-6, rtol=0)
    azim = torch.atan2(centres[:ring, 0], -centres[:ring, 1])  # 0 in front, growing counter-clockwise
    torch.testing.assert_close(torch.remainder(azim, 2 * math.pi),
                               torch.arange(ring) * (2 * math.pi / ring), atol=1e-5, rtol=0)


def test_cameras_must_be_outside_the_unit_sphere():
    with pytest.raises(ValueError, match='distance'):
        view_cameras(6, 1.0)


def test_point_renderer_keeps_the_nearest_point_in_either_order():
    # both on the front view's ray through the centre of pixel (row 18, col 20) (size 40, extent 2: 10 px per
    # unit, u = 10 x + 20, v = -10 z + 20); the camera sits at y = -2, so their camera z are 1.5 and 2.5
    near, far = [0.05, -0.5, 0.15], [0.05, 0.5, 0.15]
    views = view_cameras(6, 2.0)[:1]
    for xyz in ([near, far], [far, near]):
        depth = render_point_depth(torch.tensor(xyz), views, 40, 2.0, radius=0.1, normalize=False)[0]
        hit = torch.isfinite(depth)
        assert hit.sum() == 9  # one disc: the two discs coincide
        assert torch.all(depth[hit] == 1.5), depth[hit]  # the nearer point (camera z 2 - 0.5), never 2.5


def test_point_disc_covers_the_pixels_within_the_radius():
    # size 40, extent 2: 10 px per unit, so the point (0.05, 0, 0.05) projects to the centre of pixel (20, 19)
    # (u = 20.5, v = 19.5); radius 0.1 NDC = 2 px: the centres at distance < 2 are the 3 x 3 block around it
    depth = render_point_depth(torch.tensor([[0.05, 0.0, 0.05]]), view_cameras(6, 2.0)[:1], 40, 2.0, radius=0.1,
                               normalize=False)[0]
    rows, cols = torch.nonzero(torch.isfinite(depth), as_tuple=True)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(r, c) for r in (18, 19, 20) for c in (19, 20, 21)]
    # a radius under half a pixel still marks the pixel the point falls in
    depth = render_point_depth(torch.tensor([[0.05, 0.0, 0.05]]), view_cameras(6, 2.0)[:1], 40, 2.0, radius=0.0,
                               normalize=False)[0]
    assert torch.nonzero(torch.isfinite(depth)).tolist() == [[19, 20]]


def test_six_views_show_the_expected_sides():
    """+x, +z and -y (towards the sensor) offsets land where each named view should show them."""
    views = view_cameras(6, 2.0)
    S = 41  # odd: the origin projects to the centre pixel 20
    pts = {'+x': [0.5, 0, 0], '+z': [0, 0, 0.5], '-y': [0, -0.5, 0]}
    where = {}
    for name, p in pts.items():
        depth = render_point_depth(torch.tensor([p]), views, S, 2.0, radius=0.0, normalize=False)
        where[name] = [tuple(torch.nonzero(torch.isfinite(d))[0].tolist()) for d in depth]  # (row, col) per view
    c, off = 20, 5  # 0.5 units = 5 px
    front, right, back, left, top, bottom = range(6)
    assert where['+x'][front] == (c, c + off)  # right of the image
    assert where['+z'][front] == (c - off, c)  # up
    assert where['-y'][right] == (c, c - off)  # seen from +x, the sensor's side is on the left
    assert where['+x'][back] == (c, c - off)
    assert where['-y'][left] == (c, c + off)
    assert where['+x'][top] == (c, c + off) and where['-y'][top] == (c + off, c)  # front at the image's bottom
    assert where['+x'][bottom] == (c, c + off) and where['-y'][bottom] == (c - off, c)


def test_normalize_object_uses_the_box_centre_and_farthest_point():
    xyz = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [4.0, 0, 0], [0, 1.0, 0]])
    out, centre, scale = normalize_object(xyz * 3 + 7)
    torch.testing.assert_close(centre, torch.tensor([6.0, 1.5, 0]) + 7)  # box centre, not the centroid
    assert scale == pytest.approx(3 * math.hypot(2.0, 0.5), rel=1e-6)
    assert out.norm(dim=1).max() == pytest.approx(1.0)
    # the render does not depend on the object's placement or size
    views = view_cameras(6, 1.2)
    a = render_point_depth(xyz, views, 32, 1.2)
    b = render_point_depth(xyz * 3 + 7, views, 32, 1.2)
    assert torch.equal(torch.isfinite(a), torch.isfinite(b))


@pytest.mark.parametrize('backend', ['fused', 'dense', 'tiles'])
def test_flat_opaque_splat_returns_its_distance(backend):
    """A splat thin along the front view's axis (y) and wide across, centred on the centre pixel's ray:
    its centre pixel's expected depth is its own camera z. One Gaussian: depth = w z / w, exact up to
    float32 rounding (1e-6 relative); two stacked: the front-to-back weights a and (1 - a) a, by hand."""
    views = view_cameras(6, 3.0)[:1]
    S = 33  # odd: the ray through the centre pixel's centre is the camera axis, where alpha = opacity exactly
    for y in (0.0, 0.25, -0.4):
        depth, alpha = render_gaussian_depth(splat([0, y, 0], [0.5, 1e-4, 0.5]), views, S, 3.0, max_scale=None,
                                             normalize=False, backend=backend)
        assert depth[0, 16, 16].item() == pytest.approx(3.0 + y, rel=1e-6)
        assert alpha[0, 16, 16].item() == pytest.approx(0.99, rel=1e-5)
    a = 0.6
    depth, alpha = render_gaussian_depth(splat([[0, 0.5, 0], [0, -0.5, 0]], [0.5, 1e-4, 0.5], a), views, S, 3.0,
                                         max_scale=None, normalize=False, backend=backend)
    w_near, w_far = a, (1 - a) * a
    assert depth[0, 16, 16].item() == pytest.approx((w_near * 2.5 + w_far * 3.5) / (w_near + w_far), rel=1e-5)
    assert alpha[0, 16, 16].item() == pytest.approx(w_near + w_far, rel=1e-5)
    assert math.isinf(depth[0, 0, 0].item()) and alpha[0, 0, 0] == 0  # background


def test_orthographic_gaussians_equal_the_far_pinhole_limit():
    """Our ortho projection (gsplat's camera_model='ortho') against ``rasterize``'s pinhole with the camera
    1000 units further back and the focal length scaled to match: rotated anisotropic Gaussians agree."""
    gen = torch.Generator().manual_seed(0)
    N, S, dist, D = 40, 48, 1.5, 1000.0
    g = splat(torch.randn(N, 3, generator=gen) * 0.3, torch.rand(N, 3, generator=gen) * 0.1 + 0.01)
    g[:, 6] = torch.rand(N, generator=gen) * 0.9 + 0.05
    q = torch.randn(N, 4, generator=gen)
    g[:, 10:] = q / q.norm(dim=1, keepdim=True)
    views = view_cameras(6, dist)
    depth, alpha = render_gaussian_depth(g, views, S, dist, min_alpha=0.3, max_scale=None, normalize=False,
                                         backend='dense')
    far = views.clone()
    far[:, 2, 3] += D
    f = S / (2 * dist) * (D + dist)
    Ks = torch.tensor([[f, 0, S / 2], [0, f, S / 2], [0, 0, 1.0]]).expand(6, 3, 3)
    z = (torch.einsum('vij,nj->vni', far[:, :3, :3], g[:, :3]) + far[:, None, :3, 3])[..., 2:3] - D  # [V, N, 1]
    rep = lambda t: t[None].expand(6, *t.shape).contiguous()  # noqa: E731
    img, acc = rasterize(rep(g[:, :3]), rep(g[:, 10:]), rep(g[:, 7:10]), rep(g[:, 6]), z, far, Ks, S, S,
                         backend='dense')
    assert (alpha > 0.3).sum() > 300  # the comparison covers a real image
    # perspective differs by ~1/D: 1e-3 of the alpha, plus the 1/255 jump where a pair's alpha crosses the
    # rasteriser's cut-off in one image but not the other; on average far below
    torch.testing.assert_close(alpha, acc[..., 0], atol=1 / 255 + 1e-3, rtol=0)
    assert (alpha - acc[..., 0]).abs().mean() < 1e-4
    fg = (alpha > 0.3) & (acc[..., 0] > 0.3)
    pinhole_depth = (img[..., 0] / acc[..., 0])[fg]
    torch.testing.assert_close(depth[fg], pinhole_depth, atol=1e-2, rtol=0)
    assert (depth[fg] - pinhole_depth).abs().mean() < 1e-3


def test_depth_to_image_range_background_and_clip_constants():
    assert CLIP_MEAN == tuple(open_clip.constants.OPENAI_DATASET_MEAN)
    assert CLIP_STD == tuple(open_clip.constants.OPENAI_DATASET_STD)
    inf = math.inf
    depth = torch.tensor([[[2.0, 3.0], [inf, 4.0]],  # near, mid, background, far
                          [[5.0, inf], [inf, 5.0]],  # flat
                          [[inf, inf], [inf, inf]]])  # empty
    img = depth_to_image(depth)
    assert img.shape == (3, 3, 2, 2) and img.dtype == torch.float32
    raw = img * torch.tensor(CLIP_STD)[:, None, None] + torch.tensor(CLIP_MEAN)[:, None, None]
    torch.testing.assert_close(raw[:, 0], raw[:, 1], atol=1e-6, rtol=0)  # grey: 3 equal channels
    torch.testing.assert_close(raw[:, 0], torch.tensor([[[0.0, 100 / 255], [1.0, 200 / 255]],
                                                        [[0.0, 1.0], [1.0, 0.0]],
                                                        [[1.0, 1.0], [1.0, 1.0]]]), atol=1e-6, rtol=0)
    assert DEPTH_MAX_INTENSITY == pytest.approx(200 / 255)
    # an explicit mask overrides the finite test
    mask = torch.isfinite(depth)
    mask[0, 0, 0] = False
    raw = depth_to_image(depth, mask, mean=(0, 0, 0), std=(1, 1, 1))[0, 0]
    torch.testing.assert_close(raw, torch.tensor([[1.0, 0.0], [1.0, 200 / 255]]))


def test_points_and_gaussians_of_one_object_render_the_same_silhouettes():
    """A box's surface points, and Gaussians at the same points (isotropic, about the point spacing), placed
    and sized arbitrarily: both renderers normalise alike, so every view's silhouettes overlap."""
    pts = box_surface(20000) * 5 + torch.tensor([3.0, -2.0, 10.0])  # dense enough for hole-free point discs
    # scale 0.03 = 0.007 after normalisation (radius 5 * |(0.6, 0.3, 0.5)| = 4.1): 0.4 px at 128 px
    g = splat(pts, [0.03, 0.03, 0.03], opacity=0.9)
    views = view_cameras(6, 1.2)
    pd = render_point_depth(pts, views, 128, 1.2)
    gd, _ = render_gaussian_depth(g, views, 128, 1.2)
    pm, gm = torch.isfinite(pd), torch.isfinite(gd)
    iou = (pm & gm).sum((1, 2)) / (pm | gm).sum((1, 2))
    # 45-75 px rectangles; the Gaussians' blur (gsplat's eps2d) and the discs' 1.3 px radius differ at the
    # border by about a pixel: IoU 0.93-0.97 measured; a wrong centre, scale or view drops it far below
    assert torch.all(iou > 0.9), iou
    # the near surface: the depths agree to a few hundredths of the unit sphere
    both = pm & gm
    assert (pd[both] - gd[both]).abs().median() < 0.03


def test_max_scale_caps_needles_in_unit_sphere_units():
    """One Gaussian 10 units long along x in an object of radius 5 (2 after normalisation): capped at 0.1
    unit-sphere radii, its front-view silhouette is about 2 * 3.33 * 0.1 * f wide, not the image."""
    g = splat([[-5.0, 0, 0], [5.0, 0, 0], [0, 0, 0]], [[0.05] * 3, [0.05] * 3, [10.0, 0.05, 0.05]])
    views = view_cameras(6, 1.2)[:1]
    S = 120  # f = 50 px per unit-sphere radius
    capped = torch.isfinite(render_gaussian_depth(g, views, S, 1.2)[0][0]).any(0).sum()
    free = torch.isfinite(render_gaussian_depth(g, views, S, 1.2, max_scale=None)[0][0]).any(0).sum()
    assert free == S  # uncapped, the needle crosses the whole view
    assert capped < 0.3 * S
