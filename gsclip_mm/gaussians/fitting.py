"""Fit 3D Gaussians to points and an image (GS-CLIP section 5.1).

Positions stay fixed at the points. Colour (SH degree 0), opacity, anisotropic
scale and rotation are optimised with Adam by rendering into the image and
minimising the 3DGS loss ``(1 - l) L1 + l D-SSIM``, with opacity resets every
``opacity_reset_interval`` steps; at the end, Gaussians whose opacity is under
``prune_opacity`` are removed (3DGS's pruning; positions are fixed, so it is
the only way to "delete over-fitted Gaussians").

Two modes (``FitSettings.mode``):

* ``'scene'`` (the paper): every point of a scene against the whole image
  (:func:`prepare_scene_fit_input`, resolution ``scene_scale``), then each
  object's Gaussians cut with its rotated 3D box (:func:`cut_object`). One fit
  serves every object of the scene.
* ``'object'`` (ours): each object alone against its 2D box resized to
  ``resolution`` square (:func:`prepare_fit_input`), with pixels that no object
  point covers (see :func:`point_mask`) set to ``background``, since the
  object's Gaussians cannot (and should not) explain the wall behind it.

Several fits run in one optimisation (padded to the largest; one target size
per batch); Adam is element-wise and the loss is a sum over fits, so a batch
fit equals separate fits *in exact arithmetic*.

In float32 it does not, bit for bit, and cannot cheaply: an object's values
sit at other offsets of the batched tensors (padding, its place in the
batch), and CPU kernels compute the vectorised body and the scalar tail of an
element-wise op (``exp``, ``log``) with different code, and split work over
threads by size. So the first render and gradients of an object agree with
its separate fit to round-off (a few ulps, tested), but Adam divides each
gradient by its own running RMS: a parameter whose gradient is near zero
moves by about ``lr`` in the direction of its round-off, and the fits drift
apart by up to a few learning rates in such parameters (0.02 after 60 steps
measured here; image quality agrees). The fit is deterministic for a fixed
batch composition and thread count, so ``tools/fit_gaussians.py`` forms its
batches from fixed chunks of the dataset (a resumed run writes exactly what
an uninterrupted one would).

PSNR / SSIM are measured against the target, after pruning.
"""
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from gsclip_mm.ops import knn
from gsclip_mm.structures import GS_DIM, GS_OPACITY, GS_QUAT, GS_RGB, GS_SCALE, GS_XYZ
from gsclip_mm.structures.boxes import points_in_rboxes
from .camera import SUNRGBD_PIXEL_OFFSET, FitInputError, crop_intrinsics, decompose_depth2img, viewmat_from_rotation
from .losses import photometric_loss
from .metrics import psnr, ssim
from .rasterize import rasterize

#: Settings that do not change what is fitted (the 'tiles' rasteriser's tile side changes only its speed; the
#: default rasteriser does not read it), pinned in the cache key to the value every key so far was made with:
#: changing them reuses the cached fits, and caches written before they left the key keep their keys.
KEY_PINNED = dict(tile_size=4)


@dataclass
class FitSettings:
    """Every setting of a fit; all of them but ``tile_size`` enter the cache key (:meth:`key_dict`)."""
    num_steps: int = 500  # paper
    resolution: int = 64  # the box is resized to resolution x resolution
    max_gaussians: int = 2048  # more points are subsampled (seeded)
    lr_rgb: float = 0.05  # on logit(rgb)
    lr_opacity: float = 0.05  # on logit(opacity)
    lr_scale: float = 0.01  # on log(scale)
    lr_quat: float = 0.01
    opacity_reset_interval: int = 50  # paper; 0 disables
    opacity_reset_value: float = 0.01
    opacity_reset_until: Optional[int] = None  # last reset step; None: num_steps - 2 * interval
    init_opacity: float = 0.1
    knn: int = 3  # initial scale: RMS distance to the k nearest neighbours
    lambda_dssim: float = 0.2  # 3DGS
    background: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    mask_target: bool = True
    mask_dilate: int = 1
    eps2d: float = 0.3
    near_plane: float = 0.01
    tile_size: int = 4  # the 'tiles' rasteriser's tile side: speed only, not in the cache key
    seed: int = 0
    # What is fitted (section 5.1): 'scene' fits all of a scene's points against the whole image, then each
    # object's Gaussians are cut with its 3D box (the paper); 'object' fits each object alone against its box
    # crop resized to resolution x resolution, masked to its points (ours).
    mode: str = 'object'
    scene_scale: float = 1.0  # scene mode: the image (and camera) resized by this factor; paper: 1 (full)
    max_points: Optional[int] = None  # scene mode: at most this many points (seeded subsample); None: all
    voxel_size: float = 0.0  # scene mode: keep one point per voxel of this side (metres) first; 0: off
    prune_opacity: float = 0.005  # 3DGS's threshold: Gaussians under it at the end are removed; 0: keep all

    @classmethod
    def build(cls, settings=None, **kwargs) -> 'FitSettings':
        """From a FitSettings, a dict or keywords; unknown names raise."""
        if isinstance(settings, FitSettings):
            settings = dataclasses.asdict(settings)
        merged = dict(settings or {}, **kwargs)
        unknown = set(merged) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f'unknown fitting settings: {sorted(unknown)}')
        if 'background' in merged:
            merged['background'] = tuple(float(v) for v in merged['background'])
        out = cls(**merged)
        out.check()
        return out

    def check(self) -> None:
        """Raises ValueError naming the first setting out of its range, and its value."""
        s = self
        for ok, name, allowed in (
                (s.num_steps >= 0, 'num_steps', '>= 0'),
                (s.resolution >= 4, 'resolution', '>= 4'),
                (s.max_gaussians >= 2, 'max_gaussians', '>= 2'),
                (s.mode in ('object', 'scene'), 'mode', "'object' or 'scene'"),
                (0 < s.scene_scale <= 4, 'scene_scale', 'in (0, 4]'),
                (s.voxel_size >= 0, 'voxel_size', '>= 0'),
                (0 <= s.prune_opacity < 1, 'prune_opacity', 'in [0, 1)'),
                (s.max_points is None or s.max_points >= 2, 'max_points', 'None or >= 2')):
            if not ok:
                raise ValueError(f'bad fitting setting {name}={getattr(s, name)!r}: must be {allowed}')

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key_dict(self) -> dict:
        """The settings as they enter the cache key: ``tile_size`` pinned (see :data:`KEY_PINNED`)."""
        return dict(self.to_dict(), **KEY_PINNED)


@dataclass
class FitInput:
    """One object or scene, ready to fit; the target is H x W (object mode: R x R, R = settings.resolution)."""
    xyz: np.ndarray  # [N, 3] float32, the Gaussian centres (subsampled to max_gaussians / max_points)
    rgb: np.ndarray  # [N, 3] float32 in [0, 1]
    target: np.ndarray  # [H, W, 3] float32 in [0, 1], masked crop (object) or the image (scene)
    crop: np.ndarray  # [H, W, 3] float32 in [0, 1], unmasked crop or the image
    mask: np.ndarray  # [H, W] bool, pixels the object's points cover (scene: all)
    K: np.ndarray  # [3, 3] float64 intrinsics of the target
    viewmat: np.ndarray  # [4, 4] float64 world to camera
    name: str = ''
    counts: dict = field(default_factory=dict)  # points dropped before fitting, by reason (scene mode)


@dataclass
class FitResult:
    gaussians: np.ndarray  # [N', 14] float32, N' = N - pruned (N' = 0: nothing left; callers treat it as a failure)
    psnr: float
    ssim: float
    render: Optional[np.ndarray] = None  # [H, W, 3] float32, the target's size (object mode: R x R)
    target: Optional[np.ndarray] = None  # [H, W, 3] float32
    seconds: float = 0.0
    pruned: int = 0  # Gaussians removed by prune_opacity
    counts: dict = field(default_factory=dict)  # the input's counts (points dropped before fitting)


def knn_scales(xyz: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Initial Gaussian scale of each point: RMS distance to its k nearest other points (3DGS's init).

    Neighbours come from :func:`gsclip_mm.ops.knn`. The point itself
    is not its own neighbour; a duplicate of it (another point at distance 0)
    is. A point whose k nearest are all duplicates would get scale 0 and gets
    the smallest positive scale of the cloud instead (1e-3 when all points
    coincide). With fewer than k other points, all N - 1 are used.

    Args:
        xyz (Tensor): ``[N, 3]`` positions, N >= 2.
        k (int): neighbours per point.

    Returns:
        Tensor: ``[N]`` scales, > 0.
    """
    N = xyz.shape[0]
    assert xyz.shape == (N, 3) and N >= 2, f'xyz must be [N >= 2, 3], got {tuple(xyz.shape)}'
    k = min(k, N - 1)
    idx = knn(k + 1, xyz[None], xyz[None])[0]  # [N, k + 1]: the point itself among them (distance 0)
    # Distances measured with torch.cdist, as before this used the kNN op, so that fits keep their
    # bytes: the op's sum of squares and cdist's squared norm differ by an ulp in ~10% of points.
    d2 = torch.cdist(xyz[:, None], xyz[idx], compute_mode='donot_use_mm_for_euclid_dist')[:, 0].square()  # [N, k+1]
    # Self is a 0 and no distance is below 0, so dropping the smallest value drops self, or a
    # duplicate in its place, which leaves the same values.
    d2 = d2.sort(dim=1).values[:, 1:]  # [N, k]
    scales = d2.mean(1).sqrt()  # [N]
    positive = scales[scales > 0]
    floor = positive.min() if positive.numel() else torch.tensor(1e-3)
    return scales.clamp_min(floor)


def init_gaussians(xyz: np.ndarray, rgb: np.ndarray, init_opacity: float = 0.1, knn: int = 3) -> np.ndarray:
    """Initial Gaussians [N, 14]: point colours, kNN scales, identity rotations."""
    xyz = np.asarray(xyz, dtype=np.float32)
    n = xyz.shape[0]
    out = np.zeros((n, GS_DIM), dtype=np.float32)
    out[:, GS_XYZ] = xyz
    out[:, GS_RGB] = np.clip(rgb, 0.0, 1.0)
    out[:, GS_OPACITY] = init_opacity
    out[:, GS_SCALE] = knn_scales(torch.from_numpy(xyz), knn).numpy()[:, None]
    out[:, GS_QUAT] = (1.0, 0.0, 0.0, 0.0)
    return out


def _points_array(points: np.ndarray, name: str) -> np.ndarray:
    """Points as float32 ``[N, >=6]`` (xyz rgb); raises FitInputError on another shape."""
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] < 6:
        raise FitInputError(f'{name}: points must be [N, 6] (xyz rgb), got shape {pts.shape}')
    return pts


def check_image(img: np.ndarray, name: str = '') -> None:
    """Raises FitInputError unless ``img`` is a non-empty ``[H, W, 3]`` array."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        raise FitInputError(f'{name}: image must be an [H, W, 3] array, got '
                            f'{getattr(img, "shape", type(img).__name__)}')


def check_points(points: np.ndarray, name: str = '') -> np.ndarray:
    """Points [N, >=6] (xyz rgb) as float32; raises FitInputError on too few or non-finite."""
    pts = _points_array(points, name)
    if pts.shape[0] < 2:
        raise FitInputError(f'{name}: needs at least 2 points to fit Gaussians, got {pts.shape[0]}')
    bad = ~np.isfinite(pts[:, :6]).all(1)
    if bad.any():
        raise FitInputError(f'{name}: {int(bad.sum())} of {pts.shape[0]} points have NaN/inf values')
    return pts


def crop_box(bbox: Sequence[float], img_w: int, img_h: int, name: str = '') -> Tuple[int, int, int, int]:
    """The 2D box rounded outwards to whole 0-based pixels ``[x1, x2) x [y1, y2)``, clipped to the image.

    ``bbox`` (x1 y1 x2 y2) is in SUN RGB-D's pixel coordinates, 1-based like its
    camera (:data:`SUNRGBD_PIXEL_OFFSET`), so it is shifted by the same -0.5.
    """
    box = np.asarray(bbox, dtype=np.float64).reshape(-1)
    if box.shape != (4, ) or not np.isfinite(box).all():
        raise FitInputError(f'{name}: bbox must be 4 finite numbers, got {bbox}')
    box = box - SUNRGBD_PIXEL_OFFSET
    x1, y1 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x2, y2 = min(int(np.ceil(box[2])), img_w), min(int(np.ceil(box[3])), img_h)
    if x2 - x1 < 2 or y2 - y1 < 2:
        raise FitInputError(f'{name}: bbox {box.tolist()} is outside the {img_w}x{img_h} image or empty')
    return x1, y1, x2, y2


def prepare_fit_input(points: np.ndarray, img: np.ndarray, depth2img: np.ndarray, bbox: Sequence[float],
                      settings: FitSettings, name: str = '') -> FitInput:
    """Check one object and cut its target; raises :class:`FitInputError` with ``name`` on bad input.

    Args:
        points: [N, 6] xyz (depth frame) rgb in [0, 1]. img: [H, W, 3] uint8 RGB.
        depth2img: [3, 3]. bbox: x1 y1 x2 y2 in pixels.
    """
    pts = check_points(points, name)
    check_image(img, name)
    K_full, rot = decompose_depth2img(depth2img, name=f'{name}: depth2img')
    H, W = img.shape[:2]
    box = crop_box(bbox, W, H, name)
    res = settings.resolution
    K = crop_intrinsics(K_full, box, res, res)
    # target: the box region, antialiased resize to res x res
    region = torch.from_numpy(np.ascontiguousarray(img[box[1]:box[3], box[0]:box[2]])).float() / 255.0
    crop = F.interpolate(region.permute(2, 0, 1)[None], size=(res, res), mode='bilinear', align_corners=False,
                         antialias=True)[0].permute(1, 2, 0).clamp(0, 1).numpy()
    mask = point_mask(pts[:, :3], K, rot, res, settings.mask_dilate)
    if not mask.any():
        raise FitInputError(f'{name}: no point projects into the bbox {list(box)}')
    target = crop.copy()
    if settings.mask_target:
        target[~mask] = np.asarray(settings.background, dtype=np.float32)
    if pts.shape[0] > settings.max_gaussians:
        keep = np.sort(np.random.default_rng(settings.seed).choice(pts.shape[0], settings.max_gaussians,
                                                                   replace=False))
        pts = pts[keep]
    return FitInput(xyz=pts[:, :3].copy(), rgb=pts[:, 3:6].copy(), target=target.astype(np.float32),
                    crop=crop.astype(np.float32), mask=mask, K=K, viewmat=viewmat_from_rotation(rot), name=name)


def point_mask(xyz: np.ndarray, K: np.ndarray, rot: np.ndarray, res: int, dilate: int) -> np.ndarray:
    """[res, res] bool: the pixels the object's points cover.

    Pixels hit by a point in front of the camera, closed (dilate then erode)
    by the mean point spacing in pixels, ``sqrt(res^2 / hits)``, so that sparse
    points give a solid silhouette rather than a sieve, then dilated by
    ``dilate`` pixels.
    """
    cam = xyz.astype(np.float64) @ rot.T  # [N, 3]
    front = cam[:, 2] > 1e-6
    uvw = cam[front] @ K.T
    uv = np.floor(uvw[:, :2] / uvw[:, 2:]).astype(np.int64)
    inside = (uv >= 0).all(1) & (uv < res).all(1)
    mask = np.zeros((res, res), dtype=bool)
    mask[uv[inside, 1], uv[inside, 0]] = True
    m = torch.from_numpy(mask).float()[None, None]  # [1, 1, res, res]
    grow = lambda t, r: F.max_pool2d(t, 2 * r + 1, stride=1, padding=r)  # noqa: E731
    close = int(np.ceil(np.sqrt(res * res / max(int(inside.sum()), 1))))
    if close > 1:
        m = 1.0 - grow(1.0 - grow(m, close), close)
    if dilate > 0:
        m = grow(m, dilate)
    return m[0, 0].numpy() > 0


def subsample_points(pts: np.ndarray, settings: FitSettings) -> np.ndarray:
    """Scene mode's density settings: one point per voxel (the first in file order), then a seeded subsample.

    Args:
        pts: ``[N, F]`` finite points. Returns ``[N', F]`` in file order.
    """
    if settings.voxel_size > 0:
        vox = np.floor(pts[:, :3] / settings.voxel_size).astype(np.int64)  # [N, 3]
        _, first = np.unique(vox, axis=0, return_index=True)
        pts = pts[np.sort(first)]
    if settings.max_points is not None and pts.shape[0] > settings.max_points:
        keep = np.random.default_rng(settings.seed).choice(pts.shape[0], settings.max_points, replace=False)
        pts = pts[np.sort(keep)]
    return pts


def prepare_scene_fit_input(points: np.ndarray, img: np.ndarray, depth2img: np.ndarray, settings: FitSettings,
                            name: str = '') -> FitInput:
    """Check one scene and make its target: the whole image resized by ``scene_scale``.

    Points with NaN/inf values, behind the camera, or projecting outside the
    image are dropped and counted (``FitInput.counts``); a scene left with
    fewer than 2 points, or whose points mostly (over 1 %) fall outside the
    image (an image smaller than the depth map it was taken with), raises
    :class:`FitInputError` naming it.

    Args:
        points: ``[N, >=6]`` xyz (depth frame) rgb in [0, 1]. img: ``[H, W, 3]`` uint8 RGB.
        depth2img: ``[3, 3]``.
    """
    pts = _points_array(points, name)
    check_image(img, name)
    counts = {}
    finite = np.isfinite(pts[:, :6]).all(1)
    counts['nonfinite'] = int((~finite).sum())
    pts = pts[finite, :6]
    K_full, rot = decompose_depth2img(depth2img, name=f'{name}: depth2img')
    H, W = img.shape[:2]
    cam = pts[:, :3].astype(np.float64) @ rot.T  # [N, 3]
    front = cam[:, 2] > settings.near_plane
    counts['behind_camera'] = int((~front).sum())
    if not front.any():
        raise FitInputError(f'{name}: all {pts.shape[0]} finite points lie behind the camera')
    uvw = cam @ K_full.T
    uv = uvw[:, :2] / np.where(front, uvw[:, 2], 1.0)[:, None] - SUNRGBD_PIXEL_OFFSET  # gsplat's pixels
    inside = front & (uv[:, 0] >= -1) & (uv[:, 0] <= W + 1) & (uv[:, 1] >= -1) & (uv[:, 1] <= H + 1)
    outside = int((front & ~inside).sum())
    if outside > 0.01 * front.sum():
        raise FitInputError(f'{name}: {outside} of {int(front.sum())} points project outside the {W}x{H} image '
                            f'(u up to {uv[front, 0].max():.0f}, v up to {uv[front, 1].max():.0f}): the image is '
                            f'smaller than the depth map or the camera does not belong to it')
    counts['outside_image'] = outside
    pts = pts[inside]
    n_before = pts.shape[0]
    pts = subsample_points(pts, settings)
    counts['subsampled'] = n_before - pts.shape[0]
    if pts.shape[0] < 2:
        raise FitInputError(f'{name}: needs at least 2 points to fit Gaussians, got {pts.shape[0]}')
    w, h = max(int(round(W * settings.scene_scale)), 4), max(int(round(H * settings.scene_scale)), 4)
    K = crop_intrinsics(K_full, (0, 0, W, H), w, h)
    image = torch.from_numpy(np.ascontiguousarray(img)).float() / 255.0  # [H, W, 3]
    if (h, w) != (H, W):
        image = F.interpolate(image.permute(2, 0, 1)[None], size=(h, w), mode='bilinear', align_corners=False,
                              antialias=True)[0].permute(1, 2, 0).clamp(0, 1)
    target = image.numpy().astype(np.float32)
    return FitInput(xyz=pts[:, :3].copy(), rgb=pts[:, 3:6].copy(), target=target, crop=target,
                    mask=np.ones((h, w), dtype=bool), K=K, viewmat=viewmat_from_rotation(rot), name=name,
                    counts=counts)


def cut_object(gaussians: np.ndarray, bbox_3d: Sequence[float], name: str = '') -> np.ndarray:
    """An object's Gaussians ``[M, 14]`` from a scene fit ``[N, 14]``: centres inside its rotated 3D box ``[7]``.

    The same test as ``LoadObjectPoints`` (so, before pruning, the object's
    Gaussians are exactly its points). Raises :class:`FitInputError` when none is left.
    """
    inside = points_in_rboxes(gaussians[:, GS_XYZ], np.asarray(bbox_3d, dtype=np.float32))
    if not inside.any():
        raise FitInputError(f'{name}: no Gaussian of the scene fit is inside bbox_3d '
                            f'{np.asarray(bbox_3d).tolist()} (after pruning)')
    return np.ascontiguousarray(gaussians[inside])


def _logit(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    x = x.clamp(eps, 1 - eps)
    return torch.log(x) - torch.log1p(-x)


def pad_batch(inputs: List[FitInput], settings: FitSettings, device) -> dict:
    """Stack objects, padding to the largest N with Gaussians placed behind the camera (culled)."""
    B, n_max = len(inputs), max(inp.xyz.shape[0] for inp in inputs)
    means = torch.zeros(B, n_max, 3)
    rgb = torch.full((B, n_max, 3), 0.5)
    scale = torch.full((B, n_max), 1e-3)
    valid = torch.zeros(B, n_max, dtype=torch.bool)
    for i, inp in enumerate(inputs):
        n = inp.xyz.shape[0]
        xyz = torch.from_numpy(inp.xyz)
        means[i, :n], rgb[i, :n], valid[i, :n] = xyz, torch.from_numpy(inp.rgb), True
        behind = torch.from_numpy(inp.viewmat[:3, :3].T @ np.array([0.0, 0.0, -1.0])).float()
        means[i, n:] = behind  # camera frame (0, 0, -1): culled by the near plane
        scale[i, :n] = knn_scales(xyz, settings.knn)
    f = lambda arrs: torch.from_numpy(np.stack(arrs)).float().to(device)  # noqa: E731
    return dict(means=means.to(device), rgb=rgb.to(device), scale=scale.to(device), valid=valid.to(device),
                Ks=f([inp.K for inp in inputs]), viewmats=f([inp.viewmat for inp in inputs]),
                target=f([inp.target for inp in inputs]))


def _reset_opacity(param: torch.Tensor, optim: torch.optim.Adam, value: float) -> None:
    """3DGS opacity reset: opacity = min(opacity, value), and Adam's moments for it cleared."""
    with torch.no_grad():
        param.copy_(torch.minimum(param, _logit(torch.tensor(value))))
    state = optim.state.get(param)
    if state:
        state['exp_avg'].zero_()
        state['exp_avg_sq'].zero_()


def init_params(batch: dict, settings: FitSettings) -> Dict[str, torch.Tensor]:
    """The optimised tensors (leaves), in their unconstrained form.

    ``rgb`` [B, N, 3] logit, ``opacity`` [B, N] logit, ``log_scale`` [B, N, 3],
    ``quat`` [B, N, 4] (wxyz, normalised by the projection).
    """
    B, N = batch['means'].shape[:2]
    device = batch['means'].device
    return dict(
        rgb=_logit(batch['rgb'], 0.02).requires_grad_(True),
        opacity=_logit(torch.full((B, N), settings.init_opacity, device=device)).requires_grad_(True),
        log_scale=batch['scale'].log()[..., None].repeat(1, 1, 3).requires_grad_(True),
        quat=torch.tensor([1.0, 0, 0, 0], device=device).repeat(B, N, 1).requires_grad_(True),
    )


def render_params(params: Dict[str, torch.Tensor], batch: dict, settings: FitSettings,
                  backend: str = 'auto') -> torch.Tensor:
    """Render the current Gaussians of every fit: [B, H, W, 3] (the targets' size)."""
    s = settings
    B, H, W = batch['target'].shape[:3]
    background = torch.tensor(s.background, device=batch['means'].device).float().expand(B, 3)
    return rasterize(batch['means'], params['quat'], params['log_scale'].exp(),
                     torch.sigmoid(params['opacity']) * batch['valid'], torch.sigmoid(params['rgb']),
                     batch['viewmats'], batch['Ks'], W, H, background=background, backend=backend,
                     tile_size=s.tile_size, eps2d=s.eps2d, near_plane=s.near_plane)[0]


def fit_batch(inputs: List[FitInput], settings: FitSettings, device='cpu', backend: str = 'auto',
              return_images: bool = True) -> List[FitResult]:
    """Fit several objects in one optimisation; returns one :class:`FitResult` per input.

    Equal to separate fits up to round-off amplified by Adam (module docstring).
    """
    if not inputs:
        return []
    shapes = {inp.target.shape for inp in inputs}
    if len(shapes) != 1:
        raise ValueError(f'one target size per batch, got {sorted(shapes)} (group fits by image size)')
    t0 = time.perf_counter()
    s = settings
    batch = pad_batch(inputs, s, device)
    B = batch['means'].shape[0]
    params = init_params(batch, s)
    optim = torch.optim.Adam([
        dict(params=[params['rgb']], lr=s.lr_rgb),
        dict(params=[params['opacity']], lr=s.lr_opacity),
        dict(params=[params['log_scale']], lr=s.lr_scale),
        dict(params=[params['quat']], lr=s.lr_quat)
    ])
    reset_until = (s.num_steps - 2 * s.opacity_reset_interval) if s.opacity_reset_until is None \
        else s.opacity_reset_until

    for step in range(s.num_steps):
        if s.opacity_reset_interval > 0 and step > 0 and step % s.opacity_reset_interval == 0 \
                and step <= reset_until:
            _reset_opacity(params['opacity'], optim, s.opacity_reset_value)
        loss = photometric_loss(render_params(params, batch, s, backend), batch['target'], s.lambda_dssim).sum()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
    with torch.no_grad():
        # Pruning: removing a Gaussian = zero opacity for it (it then adds nothing to any pixel).
        keep = batch['valid'] & (torch.sigmoid(params['opacity']) >= s.prune_opacity)  # [B, N]
        batch['valid'] = keep
        img = render_params(params, batch, s, backend).clamp(0, 1)
        img_psnr, img_ssim = psnr(img, batch['target']), ssim(img, batch['target'])
        gs = torch.cat([
            batch['means'],
            torch.sigmoid(params['rgb']),
            torch.sigmoid(params['opacity'])[..., None],
            params['log_scale'].exp(),
            F.normalize(params['quat'], dim=-1),
        ], dim=-1).cpu().numpy()  # [B, N, 14]
    seconds = (time.perf_counter() - t0) / B
    keep = keep.cpu().numpy()
    out = []
    for i, inp in enumerate(inputs):
        n = inp.xyz.shape[0]
        if not np.isfinite(gs[i, :n]).all():
            raise FloatingPointError(f'{inp.name}: the fit produced NaN/inf Gaussians')
        kept = keep[i, :n]
        out.append(FitResult(gaussians=np.ascontiguousarray(gs[i, :n][kept], dtype=np.float32),
                             psnr=float(img_psnr[i]), ssim=float(img_ssim[i]),
                             render=img[i].cpu().numpy() if return_images else None,
                             target=inp.target if return_images else None, seconds=seconds,
                             pruned=int(n - kept.sum()), counts=dict(inp.counts)))
    return out


def fit_gaussians(points: np.ndarray, img: np.ndarray, depth2img: np.ndarray, bbox: Sequence[float],
                  settings=None, device='cpu', name: str = '') -> FitResult:
    """Fit one object: points [N, 6], img [H, W, 3] uint8 RGB, depth2img [3, 3], bbox [4]."""
    settings = FitSettings.build(settings)
    return fit_batch([prepare_fit_input(points, img, depth2img, bbox, settings, name)], settings, device)[0]


def render_gaussians(gaussians: np.ndarray, K: np.ndarray, viewmat: np.ndarray, width: int, height: int,
                     background=(0.0, 0.0, 0.0), backend: str = 'auto', device='cpu',
                     settings: Optional[FitSettings] = None) -> np.ndarray:
    """Render Gaussians [N, 14] with intrinsics K [3, 3] and viewmat [4, 4]; returns [H, W, 3] float32 in [0, 1]."""
    s = settings or FitSettings()
    g = torch.as_tensor(np.asarray(gaussians, dtype=np.float32), device=device)[None]  # [1, N, 14]
    f = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32), device=device)[None]  # noqa: E731
    with torch.no_grad():
        img, _ = rasterize(g[..., GS_XYZ], g[..., GS_QUAT], g[..., GS_SCALE], g[..., GS_OPACITY.start],
                           g[..., GS_RGB], f(viewmat), f(K), width, height, background=f(background),
                           backend=backend, tile_size=s.tile_size, eps2d=s.eps2d, near_plane=s.near_plane)
    return img[0].clamp(0, 1).cpu().numpy()
