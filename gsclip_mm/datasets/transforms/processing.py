"""Fixed-size sampling, unit-sphere normalisation and light 3D augmentation of Gaussians.

Gaussians are float32 ``[N, 14]`` rows laid out as in ``gsclip_mm.structures``
(xyz | rgb | opacity | scale | quat wxyz); the columns are addressed with the
``GS_*`` slices.
"""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from gsclip_mm.ops import furthest_point_sample
from gsclip_mm.registry import TRANSFORMS
from gsclip_mm.structures import GS_DIM, GS_QUAT, GS_SCALE, GS_XYZ


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of wxyz quaternions, ``[..., 4]`` x ``[..., 4]`` -> ``[..., 4]``."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


@TRANSFORMS.register_module()
class SampleGaussians(BaseTransform):
    """Pick exactly ``num_points`` rows by farthest-point or random sampling.

    With fewer rows than ``num_points``, every row is kept and rows are
    repeated (cycling through them in FPS order, or in a random order) up to
    the size. FPS picks each distinct position once: when duplicates leave no
    row at a positive distance from the picked ones, the remaining picks are
    row 0 (all tie at distance 0, as in mmcv's kernel), not the duplicates.

    Required keys: ``key`` (default ``gaussians``; ``points`` samples a point
    cloud before fitting), an ``[N, C]`` array with xyz in columns 0-2, N >= 1.

    Modified keys: ``key``, now ``[num_points, C]``.

    Args:
        num_points (int): rows to keep.
        method (str): ``'fps'`` (deterministic, starts at row 0; ties go to
            the lower row; :func:`gsclip_mm.ops.furthest_point_sample`
            in float64) or ``'random'``.
        key (str): the results key to sample.
    """

    def __init__(self, num_points: int, method: str = 'fps', key: str = 'gaussians') -> None:
        if method not in ('fps', 'random'):
            raise ValueError(f"method must be 'fps' or 'random', got {method!r}")
        if num_points < 1:
            raise ValueError(f'num_points must be >= 1, got {num_points}')
        self.num_points = int(num_points)
        self.method = method
        self.key = key

    def _order(self, xyz: np.ndarray, num: int) -> np.ndarray:
        """``[num]`` row indices into ``xyz`` ``[N, 3]``: distinct, except that FPS, once every
        distinct position is picked, picks row 0 again (all are at distance 0, a tie)."""
        if self.method == 'fps':
            # One cloud through the model's FPS op, in float64: float32 distances would round
            # near-equal candidates to ties and change which row is picked.
            cloud = torch.from_numpy(np.array(xyz, dtype=np.float64))[None]  # [1, N, 3], a copy
            return furthest_point_sample(cloud, num)[0].numpy()  # [num]
        return np.random.choice(xyz.shape[0], num, replace=False)

    def transform(self, results: dict) -> dict:
        data = results[self.key]  # [N, C]
        if data.ndim != 2 or data.shape[1] < 3 or data.shape[0] == 0:
            raise ValueError(f'{self.key} must be a non-empty [N, >=3] array, got shape {data.shape}')
        n = data.shape[0]
        idx = self._order(data[:, :3], min(n, self.num_points))
        if n < self.num_points:
            idx = np.resize(idx, self.num_points)  # cycle through all rows
        results[self.key] = data[idx]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(num_points={self.num_points}, method={self.method!r}, key={self.key!r})'


@TRANSFORMS.register_module()
class NormalizeGaussians(BaseTransform):
    """Centre the Gaussians on their centroid and scale them into the unit sphere.

    The farthest centre lands at radius 1; the scale columns are divided by
    the same factor so each Gaussian keeps its extent relative to the object.
    The factor is stored, so a model may use the object's absolute size.

    Required keys: ``gaussians`` (float32 ``[N, 14]``).

    Modified keys: ``gaussians`` (xyz and scale columns).

    Added keys: ``norm_center`` (np.float32 ``[3]``, the centroid, in the
    input's units) and ``norm_scale`` (float, the radius divided by).

    Args:
        eps (float): below this radius (a single point) the factor is 1.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = eps

    def transform(self, results: dict) -> dict:
        g = _check_gaussians(results['gaussians']).copy()  # [N, 14]
        center = g[:, GS_XYZ].astype(np.float64).mean(0)  # [3]
        xyz = g[:, GS_XYZ] - center  # [N, 3]
        radius = float(np.sqrt((xyz.astype(np.float64) ** 2).sum(1)).max())
        scale = radius if radius > self.eps else 1.0
        g[:, GS_XYZ] = xyz / scale
        g[:, GS_SCALE] = g[:, GS_SCALE] / scale
        results['gaussians'] = g
        results['norm_center'] = center.astype(np.float32)
        results['norm_scale'] = scale
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(eps={self.eps})'


@TRANSFORMS.register_module()
class RandomGaussianAugment(BaseTransform):
    """Random rotation about +z, isotropic scaling and xyz jitter of Gaussians.

    The rotation turns the centres about the origin (the centroid after
    ``NormalizeGaussians``) and left-multiplies each quaternion by the same
    rotation, so every covariance ``R S^2 R^T`` turns with the object. The
    scaling multiplies centres and scale columns alike. The jitter (Gaussian
    noise, clipped) moves centres only.

    Required keys: ``gaussians`` (float32 ``[N, 14]``).

    Modified keys: ``gaussians`` (xyz, scale and quat columns).

    Args:
        rot_range (Sequence[float]): yaw angle range in radians, uniform.
        scale_range (Sequence[float]): isotropic scale factor range, uniform.
        jitter_std (float): standard deviation of the xyz noise (0: none).
        jitter_clip (float): the noise is clipped to ``[-jitter_clip, jitter_clip]``.
    """

    def __init__(self,
                 rot_range: Sequence[float] = (-np.pi, np.pi),
                 scale_range: Sequence[float] = (0.8, 1.2),
                 jitter_std: float = 0.01,
                 jitter_clip: float = 0.05) -> None:
        if len(rot_range) != 2 or rot_range[0] > rot_range[1]:
            raise ValueError(f'rot_range must be (low, high), got {rot_range}')
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f'scale_range must be (low, high) with 0 < low <= high, got {scale_range}')
        if jitter_std < 0 or jitter_clip < 0:
            raise ValueError(f'jitter_std and jitter_clip must be >= 0, got {jitter_std}, {jitter_clip}')
        self.rot_range = tuple(float(v) for v in rot_range)
        self.scale_range = tuple(float(v) for v in scale_range)
        self.jitter_std = float(jitter_std)
        self.jitter_clip = float(jitter_clip)

    def transform(self, results: dict) -> dict:
        g = _check_gaussians(results['gaussians']).copy()  # [N, 14]
        theta = np.random.uniform(*self.rot_range)
        factor = np.random.uniform(*self.scale_range)
        c, s = np.cos(theta), np.sin(theta)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # [3, 3]
        xyz = g[:, GS_XYZ].astype(np.float64) @ rot.T * factor  # [N, 3]
        if self.jitter_std > 0:
            xyz += np.clip(np.random.normal(0.0, self.jitter_std, xyz.shape), -self.jitter_clip, self.jitter_clip)
        q_rot = np.array([np.cos(theta / 2), 0.0, 0.0, np.sin(theta / 2)])  # [4] wxyz
        quat = quat_multiply(q_rot, g[:, GS_QUAT].astype(np.float64))  # [N, 4]
        g[:, GS_XYZ] = xyz
        g[:, GS_SCALE] = g[:, GS_SCALE] * factor
        g[:, GS_QUAT] = quat / np.linalg.norm(quat, axis=1, keepdims=True)
        results['gaussians'] = g
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(rot_range={self.rot_range}, scale_range={self.scale_range}, '
                f'jitter_std={self.jitter_std}, jitter_clip={self.jitter_clip})')


def _check_gaussians(g: np.ndarray) -> np.ndarray:
    """Raise unless ``g`` is a non-empty ``[N, 14]`` array."""
    if not isinstance(g, np.ndarray) or g.ndim != 2 or g.shape[1] != GS_DIM or g.shape[0] == 0:
        raise ValueError(f'gaussians must be a non-empty [N, {GS_DIM}] array, got '
                         f'{getattr(g, "shape", type(g).__name__)}')
    return g
