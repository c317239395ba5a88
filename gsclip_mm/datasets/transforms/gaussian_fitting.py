"""Lift an object's points to 3D Gaussians: initialise them, or fit them to the image (cached)."""
import hashlib
from typing import Mapping, Optional

import numpy as np
from mmcv.transforms import BaseTransform

from gsclip_mm.gaussians import (FitInputError, FitSettings, GaussianCache, cache_key, cut_cache_key, cut_object,
                                 file_sha256, fit_batch, init_gaussians, points_sha256, prepare_fit_input,
                                 prepare_scene_fit_input, scene_cache_key)
from gsclip_mm.gaussians.fitting import check_points
from gsclip_mm.registry import TRANSFORMS
from ..utils import load_points


@TRANSFORMS.register_module()
class PointsToGaussians(BaseTransform):
    """Initial, unfitted Gaussians at the points (the CLIP^2-style input, or a fit's start).

    rgb = the point colour, scales = RMS distance to the ``knn`` nearest
    neighbours (isotropic), identity rotation, opacity ``init_opacity``.

    Required keys: ``points`` (np.float32 ``[N, 6]``, xyz rgb, N >= 2, finite).

    Added keys: ``gaussians`` (np.float32 ``[N, 14]``).

    Args:
        init_opacity (float): opacity of every Gaussian.
        knn (int): neighbours for the initial scale.
    """

    def __init__(self, init_opacity: float = 0.1, knn: int = 3) -> None:
        if not 0.0 < init_opacity < 1.0:
            raise ValueError(f'init_opacity must be in (0, 1), got {init_opacity}')
        self.init_opacity = init_opacity
        self.knn = knn

    def transform(self, results: dict) -> dict:
        pts = check_points(results['points'], results.get('lidar_path', 'points'))  # [N, 6]
        results['gaussians'] = init_gaussians(pts[:, :3], pts[:, 3:6], self.init_opacity, self.knn)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(init_opacity={self.init_opacity}, knn={self.knn})'


@TRANSFORMS.register_module()
class FitGaussians(BaseTransform):
    """The object's fitted Gaussians (see :mod:`gsclip_mm.gaussians.fitting`).

    ``mode='scene'`` (the paper, section 5.1): the object's Gaussians are cut
    with its rotated 3D box (``bbox_3d``) from a fit of its whole scene (every
    point of ``lidar_path`` against the whole image); one scene fit serves
    every object of the scene. ``mode='object'`` (ours): the object's points
    alone are fitted against its 2D box crop, masked to its points.

    With ``cache_dir`` a fit is read from / written to the cache (3DGS PLYs
    keyed by the inputs and every setting: per object in object mode; per
    scene and per cut object in scene mode), so fitting a dataset ahead with
    ``tools/fit_gaussians.py`` makes this transform a file read.
    The key uses the content hashes that ``SUNRGBDObjectDataset`` computes
    once per object (``img_sha256`` of the image file, ``points_sha256`` of
    the box's points), so steps before this one must not change ``points``,
    ``bbox`` or ``depth2img`` (load them only); without those keys the hashes
    are computed here from ``img_path`` (else the decoded image) and ``points``.

    Required keys: ``img`` (uint8 ``[H, W, 3]`` RGB), ``depth2img`` (``[3, 3]``);
    object mode: ``points`` (``[N, 6]``), ``bbox`` (``[4]``); scene mode:
    ``bbox_3d`` (``[7]``), ``lidar_path`` (``num_pts_feats``); optional
    ``img_sha256``, ``points_sha256`` (object mode), ``scene_points_sha256``
    (scene mode), ``img_path``.

    Added keys: ``gaussians`` (np.float32 ``[N', 14]``, positions = points;
    object mode N' <= max_gaussians; both modes less the pruned ones),
    ``fit_psnr`` (float, dB, render vs the masked crop, or vs the scene image
    in scene mode).

    Args:
        cache_dir (str, optional): cache folder; None fits every time.
        cache_only (bool): raise instead of fitting when the cache misses
            (training after the offline tool: a miss means different settings).
        device (str): torch device of the fit.
        backend (str): rasteriser, ``'auto'`` (gsplat on CUDA, our fused kernels on CPU).
        **settings: any :class:`~gsclip_mm.gaussians.FitSettings` field
            (``num_steps``, ``resolution``, ``max_gaussians``, ...).
    """

    def __init__(self, cache_dir: Optional[str] = None, cache_only: bool = False, device: str = 'cpu',
                 backend: str = 'auto', **settings) -> None:
        self.settings = FitSettings.build(settings)
        self.cache = GaussianCache(cache_dir) if cache_dir else None
        if cache_only and self.cache is None:
            raise ValueError('cache_only=True needs a cache_dir')
        self.cache_only = cache_only
        self.device = device
        self.backend = backend

    @staticmethod
    def object_name(results: dict) -> str:
        """A readable name of the object for errors and logs."""
        return f'{results.get("img_path", "?")}#{results.get("instance_idx", "?")}'

    @staticmethod
    def image_sha256(results: Mapping) -> str:
        """The image's content hash: ``img_sha256``, else of the file at ``img_path``, else of the pixels."""
        img_sha = results.get('img_sha256')
        if img_sha is None:
            if results.get('img_path'):
                img_sha = file_sha256(results['img_path'])
            else:  # arrays only: the decoded pixels stand in for the file
                img = np.ascontiguousarray(results['img'])
                img_sha = 'pixels:' + hashlib.sha256(str(img.shape).encode() + img.tobytes()).hexdigest()
        return img_sha

    def key(self, results: Mapping) -> str:
        """The cache key of an object: works on a dataset info (no data loaded) as on pipeline results."""
        img_sha = self.image_sha256(results)
        if self.settings.mode == 'scene':
            return cut_cache_key(self.scene_key(results, img_sha), results['bbox_3d'])
        pts_sha = results.get('points_sha256') or points_sha256(np.asarray(results['points'])[:, :6])
        return cache_key(img_sha, pts_sha, results['depth2img'], results['bbox'], self.settings.to_dict())

    def scene_key(self, results: Mapping, img_sha256: str) -> str:
        """The cache key of the object's whole-scene fit (scene mode)."""
        pts_sha = results.get('scene_points_sha256') or points_sha256(self.scene_points(results)[:, :6])
        return scene_cache_key(img_sha256, pts_sha, results['depth2img'], self.settings.to_dict())

    @staticmethod
    def scene_points(results: Mapping) -> np.ndarray:
        """All points of the object's scene ``[N, F]``."""
        return load_points(results['lidar_path'], int(results.get('num_pts_feats', 6)))

    def fit_scene(self, results: Mapping, name: str):
        """(Gaussians [N, 14], PSNR) of the scene's fit: from the cache, or fitted (and cached) now."""
        key = self.scene_key(results, self.image_sha256(results)) if self.cache is not None else None
        hit = self.cache.load(key) if key is not None else None
        if hit is not None:
            return hit[0], float(hit[1].get('psnr', float('nan')))
        if self.cache_only:
            raise FileNotFoundError(f'{name}: no cached scene fit at {self.cache.path(key)}; run '
                                    f'tools/fit_gaussians.py with the same settings first')
        inp = prepare_scene_fit_input(self.scene_points(results), results['img'], results['depth2img'],
                                      self.settings, results.get('lidar_path', name))
        res = self._fit(inp)
        if self.cache is not None:
            self.cache.save(key, res.gaussians, dict(psnr=res.psnr, ssim=res.ssim, name=results.get('lidar_path'),
                                                     pruned=res.pruned))
        return res.gaussians, res.psnr

    def _fit(self, inp):
        try:
            res = fit_batch([inp], self.settings, self.device, self.backend, return_images=False)[0]
        except FloatingPointError as e:  # this fit diverged: skip the object like bad input
            raise FitInputError(str(e)) from e
        if len(res.gaussians) == 0:
            raise FitInputError(f'{inp.name}: every Gaussian was pruned (opacity under '
                                f'{self.settings.prune_opacity})')
        return res

    def transform(self, results: dict) -> dict:
        name = self.object_name(results)
        key = self.key(results) if self.cache is not None else None
        hit = self.cache.load(key) if key is not None else None
        if hit is not None:
            gaussians, meta = hit
            psnr = float(meta.get('psnr', float('nan')))
        elif self.settings.mode == 'scene':  # cut from the scene's fit (cache_only: that fit must be cached)
            scene, psnr = self.fit_scene(results, name)
            gaussians = cut_object(scene, results['bbox_3d'], name)  # FitInputError when none is inside
            if self.cache is not None:
                self.cache.save(key, gaussians, dict(psnr=psnr, name=name))
        elif self.cache_only:
            raise FileNotFoundError(f'{name}: no cached Gaussians at {self.cache.path(key)}; run '
                                    f'tools/fit_gaussians.py with the same settings first')
        else:
            inp = prepare_fit_input(results['points'], results['img'], results['depth2img'], results['bbox'],
                                    self.settings, name)  # FitInputError (an ObjectError) on bad input
            res = self._fit(inp)
            gaussians, psnr = res.gaussians, res.psnr
            if self.cache is not None:
                self.cache.save(key, gaussians, dict(psnr=res.psnr, ssim=res.ssim, name=name))
        results['gaussians'] = np.ascontiguousarray(gaussians, dtype=np.float32)
        results['fit_psnr'] = psnr
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(cache_dir={self.cache.root if self.cache else None!r}, '
                f'cache_only={self.cache_only}, device={self.device!r}, backend={self.backend!r}, '
                f'settings={self.settings})')
