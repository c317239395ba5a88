"""Load one object's points (cropped by its rotated 3D box) and its image crop."""
from typing import Optional

import mmcv
import mmengine
import numpy as np
from mmcv.transforms import BaseTransform

from gsclip_mm.gaussians.fitting import crop_box
from gsclip_mm.registry import TRANSFORMS
from gsclip_mm.structures.boxes import points_in_rboxes
from gsclip_mm.utils.errors import ObjectError
from ..utils import load_points


@TRANSFORMS.register_module()
class LoadObjectPoints(BaseTransform):
    """Read the scene's points and keep those inside the object's rotated 3D box.

    Points stay in the scene's depth coordinates (so ``depth2img`` still
    projects them); only xyz and rgb (the first 6 columns) are kept.

    Required keys: ``lidar_path``, ``bbox_3d`` ([7], centre, sizes, yaw);
    ``num_pts_feats`` (default 6).

    Added keys: ``points`` (np.float32 ``[N, 6]``, xyz rgb, N >= 1).

    Args:
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results['lidar_path']
        num_feats = int(results.get('num_pts_feats', 6))
        if num_feats < 6:
            raise ValueError(f'{path}: need xyz rgb (6 features per point), num_pts_feats is {num_feats}')
        points = load_points(path, num_feats, self.backend_args)  # [N_scene, F]
        mask = points_in_rboxes(points, results['bbox_3d'])  # [N_scene]
        if not mask.any():
            # The dataset skips such objects at init; reaching here means the file changed.
            raise ObjectError(f'no points of {path} lie inside bbox_3d {np.asarray(results["bbox_3d"]).tolist()}')
        results['points'] = np.ascontiguousarray(points[mask, :6], dtype=np.float32)  # [N, 6]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'


# How LoadObjectImage turns a box into pixels (keys the CLIP image embeddings of the crops).
CROP_CONVENTION = 'crop=sunrgbd-1based-outward'


@TRANSFORMS.register_module()
class LoadObjectImage(BaseTransform):
    """Read the scene image (RGB) and cut the object's 2D box out of it.

    Required keys: ``img_path``, ``bbox`` ([4], x1 y1 x2 y2 pixels);
    ``img_shape`` ((h, w), checked against the file when present).

    Added keys: ``img`` (uint8 ``[H, W, 3]`` RGB, the whole image) and
    ``img_crop`` (uint8 ``[h, w, 3]`` RGB, the box clipped to the image). The
    box is in SUN RGB-D's 1-based pixel coordinates (the centre of 0-based
    column ``j`` at ``x = j + 1``), like its camera; the crop is every pixel
    the box touches, the same pixels the Gaussian fitting cuts
    (:func:`gsclip_mm.gaussians.fitting.crop_box`).

    Args:
        backend_args (dict, optional): mmengine file backend arguments.
        imdecode_backend (str): mmcv's decoding backend (``'cv2'``, ``'pillow'``, ...).
    """

    def __init__(self, backend_args: Optional[dict] = None, imdecode_backend: str = 'cv2') -> None:
        self.backend_args = backend_args
        self.imdecode_backend = imdecode_backend

    def _read(self, path: str) -> np.ndarray:
        """uint8 ``[H, W, 3]`` RGB; errors name the file."""
        try:
            content = mmengine.fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'image file not found: {path}') from e
        try:
            img = mmcv.imfrombytes(content, flag='color', channel_order='rgb', backend=self.imdecode_backend)
        except Exception as e:  # decoders raise assorted types on corrupt bytes
            raise ObjectError(f'cannot decode image file {path}: {e}') from e
        if img is None:
            raise ObjectError(f'cannot decode image file {path}')
        return img

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        img = self._read(path)  # [H, W, 3]
        if 'img_shape' in results and tuple(results['img_shape']) != img.shape[:2]:
            raise ObjectError(f'{path} is {img.shape[0]}x{img.shape[1]} (h x w) but its info says '
                              f'{tuple(results["img_shape"])}: boxes and depth2img would not match it')
        bbox = np.asarray(results['bbox'], dtype=np.float32)  # [4]
        h, w = img.shape[:2]
        if not (min(bbox[2], w) > max(bbox[0], 0) and min(bbox[3], h) > max(bbox[1], 0)):
            raise ObjectError(f'bbox {bbox.tolist()} has no area inside {path} ({h}x{w})')
        x1, y1, x2, y2 = crop_box(bbox, w, h, path)  # 0-based, [x1, x2) x [y1, y2)
        results['img'] = img
        results['img_crop'] = np.ascontiguousarray(mmcv.imcrop(img, np.array([x1, y1, x2 - 1, y2 - 1])))  # [h, w, 3]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(backend_args={self.backend_args}, '
                f'imdecode_backend={self.imdecode_backend!r})')
