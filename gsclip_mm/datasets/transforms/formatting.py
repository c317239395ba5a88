"""Pack one object's Gaussians and CLIP image embedding into model inputs and a data sample."""
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

    Required keys: ``gaussians`` (float32 ``[N, 14]``), unless ``depth_views``
    is present (a depth-map model: PointCLIP, CLIP2Point).

    Optional keys: ``depth_views`` and ``depth_views_pair`` (float32
    ``[V, 3, S, S]``, CLIP-normalised multi-view depth maps from
    ``RenderPointDepthViews`` / ``RenderGaussianDepthViews``; the pair, a
    second render at another camera distance, only with ``depth_views``),
    ``img_embed`` (float32 ``[D]``, the crop's CLIP image
    embedding from ``LoadCLIPImageEmbedding``; absent when the pipeline has no
    image loss) with ``img_embed_clip`` (its CLIP's identity), ``norm_scale``,
    ``img_path`` and ``bbox`` (make ``crop_key``), ``img_sha256`` (with ``bbox``,
    makes ``crop_digest`` without hashing pixels), ``img_crop`` (only hashed
    for ``crop_digest`` when there is no ``img_sha256``: the model takes no
    image), ``gt_label``, and the ``meta_keys``.

    Added keys (the returned dict): ``inputs = dict(gaussians=Tensor[N, 14]
    float32, img_embed=Tensor[D] float32, norm_scale=Tensor[1] float32)``
    (``img_embed`` and ``norm_scale``, the object's radius before
    ``NormalizeGaussians`` that a backbone with ``with_size=True`` uses, only
    when present; ``depth_views`` / ``depth_views_pair`` Tensor[V, 3, S, S]
    float32 when present, and then ``gaussians`` only if present and
    ``pack_gaussians``) and ``data_samples``, a ``GSCLIPDataSample`` with metainfo
    ``crop_key`` (the crop's path and box, readable), ``crop_digest`` (its
    content: see :func:`make_crop_digest`), ``img_embed_clip`` (when
    ``img_embed`` is packed) and whichever ``meta_keys`` are present (by
    default ``class_name``, ``sample_idx``, ``instance_idx``, ``img_path``,
    ``norm_center``, ``norm_scale``, ``fit_psnr``), and ``gt_label`` ``[1]`` long.

    Args:
        meta_keys (Sequence[str]): results keys copied into the metainfo when present.
        pack_gaussians (bool): pack ``gaussians`` when present (required
            without ``depth_views``); False for depth-map models, whose batches
            then need no fixed Gaussian count.
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('class_name', 'sample_idx', 'instance_idx', 'img_path', 'norm_center',
                                             'norm_scale', 'fit_psnr'),
                 pack_gaussians: bool = True) -> None:
        self.meta_keys = tuple(meta_keys)
        self.pack_gaussians = bool(pack_gaussians)

    def transform(self, results: dict) -> dict:
        inputs = _pack_depth_views(results)
        if self.pack_gaussians and ('gaussians' in results or not inputs):
            if 'gaussians' not in results:
                raise KeyError('PackGSCLIPInputs needs "gaussians" (or "depth_views" for a depth-map model); '
                               f'results have {sorted(results)}')
            inputs['gaussians'] = _gaussians_tensor(results['gaussians'])  # [N, 14]
        if not inputs:
            raise KeyError('PackGSCLIPInputs(pack_gaussians=False) needs "depth_views" (put a depth-view renderer '
                           'before it)')
        meta = {k: results[k] for k in self.meta_keys if k in results}
        if 'img_embed' in results:
            e = np.asarray(results['img_embed'])
            if e.ndim != 1 or e.size == 0 or not np.isfinite(e).all():
                raise ValueError(f'img_embed must be a finite [D] vector, got shape {e.shape}')
            inputs['img_embed'] = torch.from_numpy(np.array(e, dtype=np.float32))  # [D] (a copy: caches stay intact)
            if results.get('img_embed_clip') is not None:
                meta['img_embed_clip'] = results['img_embed_clip']
        if 'norm_scale' in results:
            inputs['norm_scale'] = torch.tensor([results['norm_scale']], dtype=torch.float32)  # [1]

        if 'img_path' in results and 'bbox' in results:
            meta['crop_key'] = make_crop_key(results['img_path'], results['bbox'])
        crop = results.get('img_crop')
        if crop is not None and (crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8 or crop.size == 0):
            raise ValueError(f'img_crop must be a non-empty uint8 [h, w, 3] array, got {crop.dtype} {crop.shape}')
        digest = make_crop_digest(results)
        if digest is not None:
            meta['crop_digest'] = digest
        data_sample = GSCLIPDataSample(metainfo=meta)
        if 'gt_label' in results:
            data_sample.set_gt_label(results['gt_label'])
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys}, pack_gaussians={self.pack_gaussians})'


def _gaussians_tensor(g) -> torch.Tensor:
    """A non-empty ``[N, 14]`` array -> float32 Tensor."""
    if not isinstance(g, np.ndarray) or g.ndim != 2 or g.shape[1] != GS_DIM or g.shape[0] == 0:
        raise ValueError(f'gaussians must be a non-empty [N, {GS_DIM}] array, got '
                         f'{getattr(g, "shape", type(g).__name__)}')
    return torch.from_numpy(np.ascontiguousarray(g, dtype=np.float32))


def _pack_depth_views(results: dict) -> dict:
    """``depth_views`` (and ``depth_views_pair``) ``[V, 3, S, S]`` -> float32 Tensors; {} when absent."""
    if 'depth_views' not in results:
        if 'depth_views_pair' in results:
            raise KeyError('results have "depth_views_pair" but no "depth_views"')
        return {}
    packed = {}
    for key in ('depth_views', 'depth_views_pair'):
        if key not in results:
            continue
        v = np.asarray(results[key])
        if v.ndim != 4 or v.shape[1] != 3 or v.shape[0] == 0 or not np.isfinite(v).all():
            raise ValueError(f'{key} must be a finite [V, 3, S, S] array, got shape {v.shape}')
        packed[key] = torch.from_numpy(np.array(v, dtype=np.float32))  # a copy: a cached render stays intact
    if 'depth_views_pair' in packed and packed['depth_views_pair'].shape != packed['depth_views'].shape:
        raise ValueError(f'depth_views_pair {tuple(packed["depth_views_pair"].shape)} and depth_views '
                         f'{tuple(packed["depth_views"].shape)} differ')
    return packed
