"""Pack one object's Gaussians and image crop into model inputs and a data sample."""
import hashlib
from typing import Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from gsclip_mm.registry import TRANSFORMS
from gsclip_mm.structures import GS_DIM, GSCLIPDataSample


def _bbox_str(bbox: Sequence[float]) -> str:
    return ','.join(f'{float(v):.2f}' for v in bbox)


def make_crop_key(img_path: str, bbox: Sequence[float]) -> str:
    """A readable key of an image crop, ``'<img_path>|x1,y1,x2,y2'`` (two decimals)."""
    return f'{img_path}|{_bbox_str(bbox)}'


def make_crop_digest(results: dict) -> Optional[str]:
    """A key of an image crop's *content* (the CLIP image-embedding cache key), or None.

    ``'file-sha256=<img_sha256>|x1,y1,x2,y2'`` when the dataset gives
    ``img_sha256`` (the SHA-256 of the image file's bytes) and ``bbox``:
    cheap, and equal in pipelines with and without the crop. Else, with an
    ``img_crop`` (uint8 ``[h, w, 3]``), ``'pixels-sha256=<hex>'`` of its
    shape and bytes. None when neither is known (then only the path-based
    ``crop_key`` identifies the crop, and a changed image file goes unnoticed).
    """
    if results.get('img_sha256') and 'bbox' in results:
        return f'file-sha256={results["img_sha256"]}|{_bbox_str(results["bbox"])}'
    crop = results.get('img_crop')
    if crop is None:
        return None
    h = hashlib.sha256('x'.join(str(d) for d in crop.shape).encode() + b'|')
    h.update(np.ascontiguousarray(crop).tobytes())
    return f'pixels-sha256={h.hexdigest()}'


@TRANSFORMS.register_module()
class PackGSCLIPInputs(BaseTransform):
    """Gather the model inputs and a ``GSCLIPDataSample``.

    Required keys: ``gaussians`` (float32 ``[N, 14]``).

    Optional keys: ``img_crop`` (uint8 ``[h, w, 3]`` RGB; absent in a
    points-only pipeline, then ``inputs`` has no ``img``), ``img_path`` and
    ``bbox`` (make ``crop_key``), ``img_sha256`` (with ``bbox``, makes
    ``crop_digest`` without hashing pixels), ``gt_label``, and the ``meta_keys``.

    Added keys (the returned dict): ``inputs = dict(gaussians=Tensor[N, 14]
    float32, img=Tensor[3, h, w] uint8, norm_scale=Tensor[1] float32)``
    (``norm_scale``, the object's radius before ``NormalizeGaussians``, only
    when present: a backbone with ``with_size=True`` uses it) and ``data_samples``, a
    ``GSCLIPDataSample`` with metainfo ``crop_key`` (the crop's path and
    box, readable), ``crop_digest`` (its content, the CLIP image-embedding
    cache key: see :func:`make_crop_digest`) and whichever
    ``meta_keys`` are present (by default ``class_name``, ``sample_idx``,
    ``instance_idx``, ``img_path``, ``norm_center``, ``norm_scale``,
    ``fit_psnr``), and ``gt_label`` ``[1]`` long.

    Args:
        meta_keys (Sequence[str]): results keys copied into the metainfo when present.
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('class_name', 'sample_idx', 'instance_idx', 'img_path', 'norm_center',
                                             'norm_scale', 'fit_psnr')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        g = results['gaussians']
        if not isinstance(g, np.ndarray) or g.ndim != 2 or g.shape[1] != GS_DIM or g.shape[0] == 0:
            raise ValueError(f'gaussians must be a non-empty [N, {GS_DIM}] array, got '
                             f'{getattr(g, "shape", type(g).__name__)}')
        inputs = dict(gaussians=torch.from_numpy(np.ascontiguousarray(g, dtype=np.float32)))  # [N, 14]
        if 'img_crop' in results:
            crop = results['img_crop']
            if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8 or crop.size == 0:
                raise ValueError(f'img_crop must be a non-empty uint8 [h, w, 3] array, got {crop.dtype} '
                                 f'{crop.shape}')
            inputs['img'] = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))  # [3, h, w]
        if 'norm_scale' in results:
            inputs['norm_scale'] = torch.tensor([results['norm_scale']], dtype=torch.float32)  # [1]

        meta = {k: results[k] for k in self.meta_keys if k in results}
        if 'img_path' in results and 'bbox' in results:
            meta['crop_key'] = make_crop_key(results['img_path'], results['bbox'])
        digest = make_crop_digest(results)
        if digest is not None:
            meta['crop_digest'] = digest
        data_sample = GSCLIPDataSample(metainfo=meta)
        if 'gt_label' in results:
            data_sample.set_gt_label(results['gt_label'])
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
