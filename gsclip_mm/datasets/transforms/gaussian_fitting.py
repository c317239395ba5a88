"""Lift an object's points to 3D Gaussians: initialise them, or fit them to the image (cached)."""
from typing import Mapping, Optional

import numpy as np
from mmcv.transforms import BaseTransform

from gsclip_mm.gaussians import GaussianFitter, init_gaussians
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
    """The object's fitted Gaussians (see :mod:`gsclip_mm.gaussians.fitting`), through a
    :class:`~gsclip_mm.gaussians.GaussianFitter` (``self.fitter``), the service ``tools/fit_gaussians.py``
    and the dataset's failure record share.

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
        self.fitter = GaussianFitter(settings, cache_dir, cache_only, device, backend, scene_points=self.scene_points)

    # The service's parts under the names this transform has always had (tools and user code call them).
    settings = property(lambda self: self.fitter.settings)
    cache = property(lambda self: self.fitter.cache)
    cache_only = property(lambda self: self.fitter.cache_only)
    device = property(lambda self: self.fitter.device)
    backend = property(lambda self: self.fitter.backend)
    object_name = staticmethod(GaussianFitter.object_name)
    image_sha256 = staticmethod(GaussianFitter.image_sha256)

    def key(self, results: Mapping) -> str:
        """The object's cache key (:meth:`GaussianFitter.key`)."""
        return self.fitter.key(results)

    def scene_key(self, results: Mapping, img_sha256: Optional[str] = None) -> str:
        """The cache key of the object's whole-scene fit (scene mode)."""
        return self.fitter.scene_key(results, img_sha256)

    @staticmethod
    def scene_points(results: Mapping) -> np.ndarray:
        """All points of the object's scene ``[N, F]``."""
        return load_points(results['lidar_path'], int(results.get('num_pts_feats', 6)))

    def fit_scene(self, results: Mapping, name: str):
        """(Gaussians [N, 14], PSNR) of the scene's fit: from the cache, or fitted (and cached) now."""
        return self.fitter.load_or_fit_scene(results, name)

    def transform(self, results: dict) -> dict:
        gaussians, psnr = self.fitter.load_or_fit(results)
        results['gaussians'] = np.ascontiguousarray(gaussians, dtype=np.float32)
        results['fit_psnr'] = psnr
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(cache_dir={self.cache.root if self.cache else None!r}, '
                f'cache_only={self.cache_only}, device={self.device!r}, backend={self.backend!r}, '
                f'settings={self.settings})')
