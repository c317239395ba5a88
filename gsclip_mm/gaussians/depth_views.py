"""Multi-view depth maps of one object, from its points or its 3D Gaussians, for CLIP's visual tower.

PointCLIP / CLIP2Point (``papers/clip2point.txt``; the authors' ``render/render.py``
and ``render/selector.py``) feed CLIP depth maps of a point cloud seen from a few
fixed views. Our functions, CPU first, no PyTorch3D:

* :func:`view_cameras`: world-to-camera matrices of the views;
* :func:`normalize_object`: one centring and scaling rule for both renderers;
* :func:`render_point_depth`: z-buffer of the points, each splatted as a small
  disc, the nearest point per pixel (CLIP2Point);
* :func:`render_gaussian_depth`: alpha-weighted expected depth of the Gaussians
  through our rasterisers (ours: CLIP2Point has no Gaussians);
* :func:`depth_to_image`: depth to CLIP input images.

Cameras (gsplat's / OpenCV's camera frame: x right, y down, z forward):

* **Orthographic**, as CLIP2Point (PyTorch3D ``OpenGLOrthographicCameras``).
  The square image shows ``[-extent, extent]`` of the object's unit-sphere
  units on each side; CLIP2Point divides the points by the view distance and
  shows NDC ``[-1, 1]``, so its ``extent`` is its distance: ours too (the
  transforms pass ``extent = distance``), and a distance change zooms.
  The same cameras serve both renderers (gsplat's pure-PyTorch projection
  has ``camera_model='ortho'``).
* **Views**, in the object's frame with **z up** (SUN RGB-D's depth frame: x
  right, y away from the sensor, z up). ``num_views >= 3``: ``num_views - 2``
  views on a horizontal ring, then top and bottom; 1 or 2: ring views only.
  Ring view ``k`` sits at azimuth ``2 pi k / n_ring`` counter-clockwise seen
  from above, starting in front (the sensor's side, -y), up = +z. So 6 views
  are front, right, back, left, top, bottom (PointCLIP's six; CLIP2Point's
  ``selector.py`` orders its six the same: azimuth 0/90/180/270, then
  elevation +90/-90). Top looks down with +y up in the image, bottom looks up
  with -y up in the image: in front, top and bottom, +x is to the right.
  Every camera sits at ``distance`` from the centre, so depth (camera z) is
  ``distance - p . view_direction``; ``distance`` must exceed 1 (ours: the
  unit sphere in front of the camera keeps every depth positive, which the
  rasterisers' near plane and depth sort need; CLIP2Point uses 1).
"""
import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from gsclip_mm.structures import GS_DIM, GS_OPACITY, GS_QUAT, GS_SCALE, GS_XYZ
from .rasterize import rasterize

#: The six views' names, in :func:`view_cameras` order for ``num_views=6``.
VIEW_NAMES_6 = ('front', 'right', 'back', 'left', 'top', 'bottom')
#: CLIP2Point's depth intensity range: nearest 0 (dark), farthest 200/255; background 1 (white).
DEPTH_MAX_INTENSITY = 200.0 / 255.0
BACKGROUND_INTENSITY = 1.0
# OpenAI CLIP's image normalisation (open_clip.constants.OPENAI_DATASET_MEAN / STD), also CLIP2Point's.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def view_directions(num_views: int) -> Tuple[Tensor, Tensor]:
    """(forward [V, 3], down [V, 3]): each camera's viewing direction and its image's downward direction,
    unit vectors in the object frame (float64). See the module docstring for the order."""
    if num_views < 1:
        raise ValueError(f'num_views must be >= 1, got {num_views}')
    n_ring = num_views - 2 if num_views >= 3 else num_views
    theta = torch.arange(n_ring, dtype=torch.float64) * (2 * math.pi / n_ring)
    # camera at (sin, -cos, 0) * distance looks back at the centre
    forward = torch.stack([-torch.sin(theta), torch.cos(theta), torch.zeros_like(theta)], -1)  # [n_ring, 3]
    down = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64).expand(n_ring, 3)
    if num_views >= 3:
        forward = torch.cat([forward, torch.tensor([[0.0, 0, -1], [0, 0, 1]], dtype=torch.float64)])  # top, bottom
        down = torch.cat([down, torch.tensor([[0.0, -1, 0], [0, 1, 0]], dtype=torch.float64)])
    return forward, down


def view_cameras(num_views: int, distance: float) -> Tensor:
    """World-to-camera matrices [V, 4, 4] (float32) of the views, each camera ``distance`` from the origin
    looking at it. Rows of the rotation: right, down, forward (x, y, z of the camera frame)."""
    if not distance > 1.0:
        raise ValueError(f'distance must be > 1 (the unit sphere in front of the camera), got {distance}')
    forward, down = view_directions(num_views)
    right = torch.linalg.cross(down, forward)  # right x down = forward
    view = torch.zeros(num_views, 4, 4, dtype=torch.float64)
    view[:, :3, :3] = torch.stack([right, down, forward], 1)
    view[:, 2, 3] = distance  # t = -R @ (-distance * forward)
    view[:, 3, 3] = 1.0
    return view.float()


def ortho_intrinsics(num_views: int, size: int, extent: float) -> Tensor:
    """Ks [V, 3, 3] of square ``size`` images showing ``[-extent, extent]`` across (u = f x + size / 2)."""
    f = size / (2.0 * extent)
    K = torch.tensor([[f, 0.0, size / 2.0], [0.0, f, size / 2.0], [0.0, 0.0, 1.0]])
    return K.expand(num_views, 3, 3).contiguous()


def normalize_object(xyz: Tensor, eps: float = 1e-6) -> Tuple[Tensor, Tensor, float]:
    """Centre xyz [N, 3] on its bounding-box centre and divide by the largest distance to it.

    Returns (xyz [N, 3] inside the unit sphere, centre [3], scale): ``xyz_out = (xyz - centre) / scale``;
    a Gaussian's scales are divided by the same ``scale``. The box centre (ours; CLIP2Point's data come
    pre-normalised) centres a partial scan in every view, where a centroid would follow the denser side.
    """
    assert xyz.dim() == 2 and xyz.shape[1] == 3, xyz.shape
    center = (xyz.amax(0) + xyz.amin(0)) / 2  # [3]
    radius = float((xyz - center).norm(dim=1).max())
    scale = radius if radius > eps else 1.0
    return (xyz - center) / scale, center, scale


def _to_camera(xyz: Tensor, viewmats: Tensor) -> Tensor:
    """xyz [N, 3] -> camera-frame points [V, N, 3]."""
    return torch.einsum('vij,nj->vni', viewmats[:, :3, :3], xyz) + viewmats[:, None, :3, 3]


def _disc_offsets(radius_px: float) -> Tensor:
    """Integer pixel offsets [K, 2] (dx, dy) from the pixel a point falls in to every pixel whose centre may lie
    within ``radius_px`` of it: ``|dx + 0.5 - frac| < r`` with ``frac`` in [0, 1) needs ``|dx| <= r + 0.5``."""
    r = int(math.floor(radius_px + 0.5))
    d = torch.arange(-r, r + 1)
    dy, dx = torch.meshgrid(d, d, indexing='ij')
    return torch.stack([dx.reshape(-1), dy.reshape(-1)], -1)


def render_point_depth(xyz: Tensor, viewmats: Tensor, size: int, extent: float, radius: float = 0.02,
                       normalize: bool = True) -> Tensor:
    """Depth maps [V, S, S] of points xyz [N, 3] (``inf`` where no point lands), viewmats [V, 4, 4].

    Each point covers the pixels whose centres lie within ``radius * size / 2`` pixels of its projection
    (``radius`` in PyTorch3D's NDC units, as CLIP2Point's ``points_radius=0.02``: 2.24 px at 224, i.e.
    0.02 unit-sphere radii at its distance 1), and always the pixel it falls in. Each pixel keeps the
    nearest depth of the points covering it (CLIP2Point's ``points_per_pixel=1``): a scatter-min.
    Depth is the camera z of the point's centre (PyTorch3D's zbuf).
    """
    assert xyz.dim() == 2 and xyz.shape[1] == 3, xyz.shape
    V = viewmats.shape[0]
    assert viewmats.shape == (V, 4, 4), viewmats.shape
    if normalize:
        xyz = normalize_object(xyz)[0]
    cam = _to_camera(xyz.float(), viewmats.float())  # [V, N, 3]
    f = size / (2.0 * extent)
    u, v, z = cam[..., 0] * f + size / 2, cam[..., 1] * f + size / 2, cam[..., 2]  # [V, N] each
    r_px = radius * size / 2
    off = _disc_offsets(r_px)  # [K, 2]
    px = torch.floor(u)[..., None].long() + off[:, 0]  # [V, N, K]
    py = torch.floor(v)[..., None].long() + off[:, 1]
    d2 = (px + 0.5 - u[..., None]) ** 2 + (py + 0.5 - v[..., None]) ** 2
    own = (off == 0).all(-1)  # [K]: the pixel the point falls in
    keep = ((d2 < r_px * r_px) | own) & (px >= 0) & (px < size) & (py >= 0) & (py < size) & (z[..., None] > 0)
    view_idx = torch.arange(V)[:, None, None]
    # dropped pairs go to one spare slot past the images: no boolean indexing (a nonzero pass) needed
    flat = torch.where(keep, (view_idx * size + py) * size + px, V * size * size)  # [V, N, K]
    depth = torch.full((V * size * size + 1, ), math.inf)
    depth.scatter_reduce_(0, flat.reshape(-1), z[..., None].expand_as(d2).reshape(-1), 'amin')
    return depth[:-1].reshape(V, size, size)


def render_gaussian_depth(gaussians: Tensor, viewmats: Tensor, size: int, extent: float, min_alpha: float = 0.5,
                          max_scale: Optional[float] = 0.1, normalize: bool = True,
                          backend: str = 'auto') -> Tuple[Tensor, Tensor]:
    """(depth [V, S, S], alpha [V, S, S]) of Gaussians [N, 14] seen by viewmats [V, 4, 4].

    Depth is the alpha-weighted expected camera z, ``sum_i w_i z_i / sum_i w_i`` (the rasteriser's
    1-channel image of each Gaussian's centre depth over its accumulated alpha), ``inf`` where the
    accumulated alpha is at most ``min_alpha`` (ours: the silhouette at half coverage, where a
    Gaussian's soft edge stops). All V views render as one batch. With ``normalize``, centres go
    through :func:`normalize_object` and the scales are divided by the same factor. ``max_scale``
    (ours; None: off) caps each scale, in the units rendered (unit-sphere radii when normalised): a fit
    to one image leaves some Gaussians long along the camera rays it never saw across, and those
    needles, reaching far out of the object's box, would otherwise cross every side view.
    """
    assert gaussians.dim() == 2 and gaussians.shape[1] == GS_DIM, gaussians.shape
    V = viewmats.shape[0]
    assert viewmats.shape == (V, 4, 4), viewmats.shape
    g = gaussians.float()
    xyz, scales = g[:, GS_XYZ], g[:, GS_SCALE]
    if normalize:
        xyz, _, s = normalize_object(xyz)
        scales = scales / s
    if max_scale is not None:
        scales = scales.clamp_max(max_scale)
    viewmats = viewmats.to(g)
    z = _to_camera(xyz, viewmats)[..., 2:3]  # [V, N, 1]
    expand = lambda a: a[None].expand(V, *a.shape).contiguous()  # noqa: E731
    Ks = ortho_intrinsics(V, size, extent).to(g)
    with torch.no_grad():
        img, acc = rasterize(expand(xyz), expand(g[:, GS_QUAT]), expand(scales), expand(g[:, GS_OPACITY.start]), z,
                             viewmats, Ks, size, size, backend=backend, camera_model='ortho')
    alpha = acc[..., 0]  # [V, S, S]
    depth = torch.where(alpha > min_alpha, img[..., 0] / alpha.clamp_min(1e-12), torch.full_like(alpha, math.inf))
    return depth, alpha


def depth_to_image(depth: Tensor, mask: Optional[Tensor] = None, mean: Sequence[float] = CLIP_MEAN,
                   std: Sequence[float] = CLIP_STD) -> Tensor:
    """CLIP inputs [V, 3, S, S] from depth maps [V, S, S] (mask [V, S, S] bool: foreground; default finite depth).

    Per image, foreground depth maps linearly to ``[0, 200/255]`` (nearest dark, farthest 200/255),
    background to 1 (white), as CLIP2Point's ``Renderer.norm``; replicated to 3 channels, then
    ``(x - mean) / std`` per channel. CLIP2Point divides by the far depth instead of the depth range
    (``(d - near) / far``, so its far end sits below 200/255); ours spans the whole range.
    A flat image (one depth) is all 0 on its foreground.
    """
    V, S = depth.shape[0], depth.shape[-1]
    assert depth.shape == (V, S, S), depth.shape
    if mask is None:
        mask = torch.isfinite(depth)
    assert mask.shape == depth.shape, mask.shape
    near = torch.where(mask, depth, torch.full_like(depth, math.inf)).amin((1, 2), keepdim=True)  # [V, 1, 1]
    far = torch.where(mask, depth, torch.full_like(depth, -math.inf)).amax((1, 2), keepdim=True)
    span = (far - near).clamp_min(1e-12)
    x = torch.where(mask, (depth - near) / span * DEPTH_MAX_INTENSITY, torch.full_like(depth, BACKGROUND_INTENSITY))
    x = x.clamp(0.0, BACKGROUND_INTENSITY)  # only round-off leaves [0, 200/255] on the foreground
    inv_std = 1.0 / torch.as_tensor(std, dtype=x.dtype)[:, None, None]  # [3, 1, 1]
    # (x - mean) / std as one fused pass over the [V, 3, S, S] output
    return torch.addcmul(-torch.as_tensor(mean, dtype=x.dtype)[:, None, None] * inv_std, x[:, None], inv_std)


def depth_views(source: Union[Tensor, np.ndarray], kind: str, num_views: int, size: int, distance: float,
                **kwargs) -> Tensor:
    """CLIP inputs [V, 3, S, S] of one object: ``kind`` ``'points'`` (source xyz [N, >=3]) or
    ``'gaussians'`` (source [N, 14]), the views of :func:`view_cameras` at ``distance``, extent = distance.
    ``kwargs`` go to the renderer, except ``mean`` / ``std`` (to :func:`depth_to_image`)."""
    norm = {k: kwargs.pop(k) for k in ('mean', 'std') if k in kwargs}
    src = torch.as_tensor(source)
    views = view_cameras(num_views, distance)
    if kind == 'points':
        depth = render_point_depth(src[:, :3].float(), views, size, distance, **kwargs)
    elif kind == 'gaussians':
        depth = render_gaussian_depth(src, views, size, distance, **kwargs)[0]
    else:
        raise ValueError(f"kind must be 'points' or 'gaussians', got {kind!r}")
    return depth_to_image(depth, **norm)
