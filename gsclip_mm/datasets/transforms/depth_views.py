"""Multi-view depth images of an object (PointCLIP / CLIP2Point), from its points or its Gaussians.

The rendering, cameras and normalisation are :mod:`gsclip_mm.gaussians.depth_views`'s (its module
docstring says which settings are CLIP2Point's and which are ours).
"""
from typing import Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from gsclip_mm.gaussians.depth_views import CLIP_MEAN, CLIP_STD, depth_views
from gsclip_mm.registry import TRANSFORMS
from gsclip_mm.structures import GS_DIM
from gsclip_mm.utils.errors import ObjectError


class _RenderDepthViews(BaseTransform):
    """Shared arguments and the pair logic; subclasses name their source and renderer."""

    kind = ''

    def __init__(self,
                 num_views: int = 6,
                 size: int = 224,
                 distance: float = 1.2,
                 pair_distance_jitter: float = 0.0,
                 mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD,
                 key: str = 'points') -> None:
        if num_views < 1 or size < 1:
            raise ValueError(f'num_views and size must be >= 1, got {num_views}, {size}')
        if not 0.0 <= pair_distance_jitter < 1.0:
            raise ValueError(f'pair_distance_jitter must be in [0, 1), got {pair_distance_jitter}')
        if not distance * (1.0 - pair_distance_jitter) > 1.0:
            raise ValueError(f'distance * (1 - pair_distance_jitter) must be > 1 (cameras outside the unit '
                             f'sphere), got {distance} and {pair_distance_jitter}')
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f'mean and std must have 3 values, got {mean}, {std}')
        self.num_views = int(num_views)
        self.size = int(size)
        self.distance = float(distance)
        self.pair_distance_jitter = float(pair_distance_jitter)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.key = key

    def _source(self, results: dict) -> np.ndarray:
        """The array to render, checked: raises ObjectError naming the object."""
        data = results.get(self.key)
        name = f'{results.get("img_path", "?")}#{results.get("instance_idx", "?")}'
        width = GS_DIM if self.kind == 'gaussians' else 3
        shape = getattr(data, 'shape', None)
        if data is None or len(shape) != 2 or shape[0] == 0 or shape[1] < width:
            raise ObjectError(f'{name}: {self.__class__.__name__} needs a non-empty [N, >={width}] '
                              f'results[{self.key!r}], got {None if data is None else shape}')
        data = np.asarray(data, dtype=np.float32)
        if not np.isfinite(data[:, :width]).all():
            raise ObjectError(f'{name}: results[{self.key!r}] has non-finite values')
        return data

    def _render(self, data: np.ndarray, distance: float) -> np.ndarray:
        """[V, 3, S, S] float32."""
        return depth_views(torch.from_numpy(data), self.kind, self.num_views, self.size, distance,
                           mean=self.mean, std=self.std, **self._render_kwargs()).numpy()

    def _render_kwargs(self) -> dict:
        return {}

    def transform(self, results: dict) -> dict:
        data = self._source(results)
        results['depth_views'] = self._render(data, self.distance)
        results['depth_views_distance'] = self.distance
        if self.pair_distance_jitter > 0:
            j = self.pair_distance_jitter
            pair_distance = self.distance * np.random.uniform(1.0 - j, 1.0 + j)
            results['depth_views_pair'] = self._render(data, pair_distance)
            results['depth_views_pair_distance'] = float(pair_distance)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_views={self.num_views}, size={self.size}, '
                f'distance={self.distance}, pair_distance_jitter={self.pair_distance_jitter}, '
                f'mean={self.mean}, std={self.std}, key={self.key!r}{self._repr_extra()})')

    def _repr_extra(self) -> str:
        return ''


@TRANSFORMS.register_module()
class RenderPointDepthViews(_RenderDepthViews):
    """Depth images of an object's points from ``num_views`` orthographic views (CLIP2Point's renderer).

    The points are centred and scaled into the unit sphere; each is splatted as a disc of
    ``point_radius`` (NDC units: ``point_radius * size / 2`` pixels) and each pixel keeps the nearest
    point; depth is mapped per image to ``[0, 200/255]`` (near dark), background 1, replicated to 3
    channels and normalised by ``mean`` / ``std``.

    Required keys: ``key`` (default ``points``; ``gaussians`` renders the Gaussians' centres), an
    ``[N, >=3]`` array with xyz in columns 0-2.

    Added keys: ``depth_views`` (np.float32 ``[V, 3, S, S]``, ready for CLIP's visual tower),
    ``depth_views_distance`` (float); with ``pair_distance_jitter > 0`` also ``depth_views_pair``
    (the same views at ``depth_views_pair_distance = distance * U(1 - j, 1 + j)``, from numpy's
    global RNG: CLIP2Point's pre-training pair).

    Raises :class:`~gsclip_mm.utils.errors.ObjectError`, naming the object (``img_path#instance_idx``),
    on a missing or empty source or non-finite values.

    Args:
        num_views (int): 6 = front, right, back, left, top, bottom (PointCLIP's); otherwise
            ``num_views - 2`` ring views plus top and bottom (1 or 2: ring only).
        size (int): image side (224 for CLIP ViT-B; a tiny CLIP's own input size).
        distance (float): camera distance in unit-sphere radii; the orthographic view shows
            ``[-distance, distance]`` across (CLIP2Point's zoom). Ours 1.2 (CLIP2Point 1, the
            object touching the border); must stay > 1 under the jitter.
        pair_distance_jitter (float): j in [0, 1) (CLIP2Point: 0.1); 0 renders no pair.
        mean, std (Sequence[float]): per-channel normalisation (OpenAI CLIP's by default).
        key (str): the results key of the points.
        point_radius (float): splat radius in NDC units (CLIP2Point's 0.02).
    """

    kind = 'points'

    def __init__(self, *args, key: str = 'points', point_radius: float = 0.02, **kwargs) -> None:
        super().__init__(*args, key=key, **kwargs)
        if point_radius < 0:
            raise ValueError(f'point_radius must be >= 0, got {point_radius}')
        self.point_radius = float(point_radius)

    def _render_kwargs(self) -> dict:
        return dict(radius=self.point_radius)

    def _repr_extra(self) -> str:
        return f', point_radius={self.point_radius}'


@TRANSFORMS.register_module()
class RenderGaussianDepthViews(_RenderDepthViews):
    """Depth images of an object's 3D Gaussians: alpha-weighted expected depth through our rasteriser.

    Same cameras, normalisation and outputs as :class:`RenderPointDepthViews` (the Gaussians' centres
    are normalised by the same rule, their scales divided by the same factor), so the points and the
    Gaussians of one object land at the same place. A pixel is background where the Gaussians'
    accumulated alpha is at most ``min_alpha``.

    Required keys: ``key`` (default ``gaussians``), float32 ``[N, 14]``.

    Added keys: as :class:`RenderPointDepthViews`.

    Args:
        num_views, size, distance, pair_distance_jitter, mean, std, key: as
            :class:`RenderPointDepthViews`.
        min_alpha (float): silhouette threshold on the accumulated alpha (ours).
        max_scale (float, optional): cap on each Gaussian's scales in unit-sphere radii (ours: cuts the
            needles a one-image fit leaves along its camera rays); None: no cap.
        backend (str): :func:`~gsclip_mm.gaussians.rasterize.rasterize`'s (``'auto'``: fused CPU
            kernels, gsplat on CUDA tensors).
    """

    kind = 'gaussians'

    def __init__(self, *args, key: str = 'gaussians', min_alpha: float = 0.5, max_scale: Optional[float] = 0.1,
                 backend: str = 'auto', **kwargs) -> None:
        super().__init__(*args, key=key, **kwargs)
        if not 0.0 <= min_alpha < 1.0:
            raise ValueError(f'min_alpha must be in [0, 1), got {min_alpha}')
        if max_scale is not None and not max_scale > 0:
            raise ValueError(f'max_scale must be > 0 or None, got {max_scale}')
        self.min_alpha = float(min_alpha)
        self.max_scale = None if max_scale is None else float(max_scale)
        self.backend = backend

    def _render_kwargs(self) -> dict:
        return dict(min_alpha=self.min_alpha, max_scale=self.max_scale, backend=self.backend)

    def _repr_extra(self) -> str:
        return f', min_alpha={self.min_alpha}, max_scale={self.max_scale}, backend={self.backend!r}'
