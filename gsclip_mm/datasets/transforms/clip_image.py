"""CLIP's image side in the data pipeline: open_clip's preprocessing of an object crop, and the
crop's CLIP image embedding (the image loss's target) from an on-disk cache.

The model never sees an image: the frozen image tower runs once per crop, ahead
(``tools/extract_image_embeddings.py``) or on a cache miss in the data loader,
and training batches carry the embeddings (``img_embed``).
"""
import hashlib
import io
import json
import os
import os.path as osp
import re
from typing import Optional, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

from gsclip_mm.clip import (TINY_CLIP_NAME, build_frozen_clip, clip_embed_dims, clip_identity, clip_preprocess_cfg,
                            encode_images)
from gsclip_mm.registry import TRANSFORMS
from gsclip_mm.utils import atomic_write
from .formatting import make_crop_digest
from .loading import CROP_CONVENTION


def default_cache_root() -> str:
    """``$GSCLIP_MM_CACHE_DIR/clip_image_embeddings`` (``~/.cache/gsclip_mm`` when unset)."""
    return osp.join(os.environ.get('GSCLIP_MM_CACHE_DIR', osp.expanduser('~/.cache/gsclip_mm')),
                    'clip_image_embeddings')


@TRANSFORMS.register_module()
class CLIPImagePreprocess(BaseTransform):
    """open_clip's inference preprocessing of the object crop, for a named CLIP.

    Exactly open_clip's own transform: ``open_clip.image_transform_v2(PreprocessCfg(**cfg),
    is_train=False)`` on the crop as a PIL image, where ``cfg`` is what
    ``open_clip.create_model_and_transforms(model_name, pretrained)`` uses
    for its validation transform (``gsclip_mm.clip.clip_preprocess_cfg``),
    updated by ``preprocess_cfg``. For open_clip's CLIPs: resize the shorter
    side to ``S`` (bicubic, PIL), centre crop ``S x S``, scale to [0, 1] and
    normalise with the CLIP's mean / std.

    Required keys: ``img_crop`` (uint8 ``[h, w, 3]`` RGB, ``LoadObjectImage``).

    Added keys: ``clip_img`` (float32 Tensor ``[3, S, S]``, the CLIP's input).

    Args:
        model_name (str): open_clip architecture (the config's ``clip`` settings).
        pretrained (str | None): its weights; a tag's preprocessing (mean / std,
            interpolation, resize mode) applies.
        preprocess_cfg (dict | None): overrides of ``PreprocessCfg`` fields
            (``size``, ``mean``, ``std``, ``interpolation``, ``resize_mode``, ``fill_color``).
    """

    def __init__(self, model_name: str = TINY_CLIP_NAME, pretrained: Optional[str] = None,
                 preprocess_cfg: Optional[dict] = None) -> None:
        from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

        cfg = clip_preprocess_cfg(model_name, pretrained)
        unknown = set(preprocess_cfg or {}) - set(cfg)
        if unknown:
            raise ValueError(f'unknown preprocess_cfg fields {sorted(unknown)}; open_clip PreprocessCfg has '
                             f'{sorted(cfg)}')
        cfg = merge_preprocess_dict(cfg, preprocess_cfg or {})
        self.model_name = model_name
        self.cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        self._fn = image_transform_v2(PreprocessCfg(**self.cfg), is_train=False)

    @property
    def recipe(self) -> str:
        """Everything that decides the tensor of a crop (part of the image-embedding cache key), including how
        ``LoadObjectImage`` cuts the box (``CROP_CONVENTION``: a change re-encodes every crop)."""
        return (f'{CROP_CONVENTION}|open_clip.image_transform_v2(is_train=False,PIL)|'
                + json.dumps(self.cfg, sort_keys=True))

    def apply(self, crop: np.ndarray) -> torch.Tensor:
        """uint8 ``[h, w, 3]`` RGB -> float32 ``[3, S, S]`` normalised."""
        from PIL import Image
        if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3 \
                or crop.size == 0:
            raise ValueError(f'img_crop must be a non-empty uint8 [h, w, 3] RGB array, got '
                             f'{getattr(crop, "dtype", type(crop).__name__)} {getattr(crop, "shape", "")}')
        return self._fn(Image.fromarray(crop))  # uint8 [h, w, 3] -> an RGB image

    def transform(self, results: dict) -> dict:
        results['clip_img'] = self.apply(results['img_crop'])
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(model_name={self.model_name!r}, cfg={self.cfg})'


class CLIPImageEmbeddingCache:
    """On-disk CLIP image embeddings: one ``.npy`` (float32 ``[D]``) per crop.

    Layout: ``<root>/<model_name>-<16 hex of sha1(clip identity | recipe)>/<ab>/<sha256 of crop digest>.npy``
    plus ``model.json`` (the CLIP identity, the preprocessing, whether the CLIP
    is untrained) in that folder. Files are written atomically.

    Args:
        root (str): the cache root (the transform's ``cache_dir``).
        model_name (str): open_clip architecture (the folder's readable prefix).
        identity (str): ``gsclip_mm.clip.clip_identity`` of the weights.
        recipe (str): ``CLIPImagePreprocess.recipe``.
        embed_dims (int): ``D``; a file of another shape is ignored (re-encoded).
        untrained (bool): recorded in the manifest.
    """

    def __init__(self, root: str, model_name: str, identity: str, recipe: str, embed_dims: int,
                 untrained: bool = False) -> None:
        self.identity, self.recipe, self.embed_dims, self.untrained = identity, recipe, int(embed_dims), untrained
        digest = hashlib.sha1(f'{identity}|{recipe}'.encode()).hexdigest()[:16]
        readable = re.sub(r'[^\w.-]', '_', model_name)  # e.g. 'hf-hub:org/x' -> 'hf-hub_org_x'
        self.folder = osp.join(root, f'{readable}-{digest}')

    def path(self, crop_digest: str) -> str:
        stem = hashlib.sha256(crop_digest.encode()).hexdigest()
        return osp.join(self.folder, stem[:2], f'{stem}.npy')

    def load(self, crop_digest: str) -> Optional[np.ndarray]:
        """float32 ``[D]``, or None when missing (or unreadable / of another shape: then re-encoded)."""
        path = self.path(crop_digest)
        if not osp.isfile(path):
            return None
        try:
            emb = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:  # a truncated file cannot occur (atomic writes), but stay safe
            print_log(f'ignoring unreadable CLIP image-embedding cache file {path}: {e}', logger='current')
            return None
        return emb.astype(np.float32, copy=False) if emb.shape == (self.embed_dims, ) else None

    def save(self, crop_digest: str, emb: np.ndarray) -> None:
        assert emb.shape == (self.embed_dims, ), f'embedding must be [{self.embed_dims}], got {emb.shape}'
        manifest = osp.join(self.folder, 'model.json')
        if not osp.isfile(manifest):
            atomic_write(manifest, json.dumps(dict(clip=self.identity, preprocess=self.recipe,
                                                   untrained=self.untrained), indent=1).encode())
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(emb, dtype=np.float32))  # serialised before any file is opened
        atomic_write(self.path(crop_digest), buf.getvalue())


@TRANSFORMS.register_module()
class LoadCLIPImageEmbedding(BaseTransform):
    """The crop's CLIP image embedding (the image loss's target), from a disk cache.

    The cache is keyed by the crop's content (``make_crop_digest``: the image
    file's SHA-256 and the box, else the crop's pixels), the CLIP's identity
    (name, weights, seed) and the preprocessing recipe, so a changed image,
    CLIP or recipe never reuses a stale embedding. ``tools/extract_image_embeddings.py``
    fills it ahead (batched, on a GPU when there is one). On a miss:
    ``cache_only=True`` raises (the paper config: run the tool first);
    otherwise the embedding is computed here, once: ``CLIPImagePreprocess``
    on ``img_crop`` and the frozen image tower (built at the first miss of
    each process), then written to the cache.

    Required keys: ``img_sha256`` and ``bbox`` (the dataset's), or ``img_crop``;
    ``img_crop`` (uint8 ``[h, w, 3]``) on a miss.

    Added keys: ``img_embed`` (np.float32 ``[D]``, unit norm) and
    ``img_embed_clip`` (str, the CLIP's identity: the head checks that it is
    its own).

    Args:
        model_name, pretrained, clip_seed, clip_cache_dir: the CLIP, as for
            ``FrozenCLIPHead`` (pass the config's ``clip`` settings to both).
        cache_dir (str | None | False): cache root; None:
            ``$GSCLIP_MM_CACHE_DIR/clip_image_embeddings`` (``~/.cache/gsclip_mm``
            when unset); False: no disk cache (computed in each process, kept in memory).
        cache_only (bool): raise on a miss instead of computing.
        preprocess_cfg (dict | None): overrides of open_clip's preprocessing
            (``CLIPImagePreprocess``).
        device (str): where a miss is encoded (data loader workers: ``'cpu'``).
    """

    def __init__(self,
                 model_name: str = TINY_CLIP_NAME,
                 pretrained: Optional[str] = None,
                 clip_seed: int = 0,
                 clip_cache_dir: Optional[str] = None,
                 cache_dir: Union[str, None, bool] = None,
                 cache_only: bool = False,
                 preprocess_cfg: Optional[dict] = None,
                 device: str = 'cpu') -> None:
        if cache_dir is True:
            raise ValueError('cache_dir must be a folder, None (the default root) or False (no disk cache)')
        if cache_only and cache_dir is False:
            raise ValueError('cache_only=True needs a disk cache (cache_dir is False)')
        self.model_name, self.pretrained, self.clip_seed = model_name, pretrained, clip_seed
        self.clip_cache_dir, self.cache_only, self.device = clip_cache_dir, bool(cache_only), device
        self.preprocess = CLIPImagePreprocess(model_name, pretrained, preprocess_cfg)
        self.identity = clip_identity(model_name, pretrained, clip_seed)
        self.embed_dims = clip_embed_dims(model_name)
        self.cache = None if cache_dir is False else CLIPImageEmbeddingCache(
            default_cache_root() if cache_dir is None else str(cache_dir), model_name, self.identity,
            self.preprocess.recipe, self.embed_dims, untrained=pretrained is None)
        self._memory = {}  # crop digest -> [D], only without a disk cache
        self._clip = None  # built at the first miss of this process

    def __getstate__(self) -> dict:  # data loader workers build their own CLIP (never pickle a model)
        state = dict(self.__dict__)
        state['_clip'] = None
        return state

    @property
    def clip(self) -> torch.nn.Module:
        """The frozen open_clip model on :attr:`device`, built on first use."""
        if self._clip is None:
            self._clip = build_frozen_clip(self.model_name, self.pretrained, self.clip_seed,
                                           self.clip_cache_dir).to(self.device)
        return self._clip

    @staticmethod
    def crop_digest(results: dict) -> str:
        """The crop's content key (``make_crop_digest``); ValueError naming the object when unknown."""
        digest = make_crop_digest(results)
        if digest is None:
            raise ValueError(f'cannot key the CLIP image embedding of {results.get("img_path", "an object")}: '
                             f'the results have neither img_sha256 + bbox (the dataset) nor img_crop '
                             f'(LoadObjectImage)')
        return digest

    def lookup(self, crop_digest: str) -> Optional[np.ndarray]:
        """The cached ``[D]`` embedding or None."""
        return self._memory.get(crop_digest) if self.cache is None else self.cache.load(crop_digest)

    def store(self, crop_digest: str, emb: np.ndarray) -> None:
        if self.cache is None:
            self._memory[crop_digest] = emb
        else:
            self.cache.save(crop_digest, emb)

    def encode(self, clip_imgs: torch.Tensor) -> np.ndarray:
        """``[B, 3, S, S]`` preprocessed crops -> float32 ``[B, D]`` unit vectors (the frozen image tower)."""
        return encode_images(self.clip, clip_imgs.to(self.device)).cpu().numpy()

    def transform(self, results: dict) -> dict:
        digest = self.crop_digest(results)
        emb = self.lookup(digest)
        if emb is None:
            if self.cache_only:
                raise FileNotFoundError(
                    f'{results.get("img_path", "object")} (bbox {np.asarray(results.get("bbox")).tolist()}): no '
                    f'cached CLIP image embedding at {self.cache.path(digest)}; run '
                    f'tools/extract_image_embeddings.py CONFIG first (same CLIP and cache_dir)')
            if 'img_crop' not in results:
                raise KeyError('LoadCLIPImageEmbedding computes a missing embedding from "img_crop": put '
                               'LoadObjectImage before it in the pipeline')
            emb = self.encode(self.preprocess.apply(results['img_crop'])[None])[0]  # [D]
            self.store(digest, emb)
        results['img_embed'] = emb
        results['img_embed_clip'] = self.identity
        return results

    def __repr__(self) -> str:
        where = self.cache.folder if self.cache is not None else 'memory'
        return (f'{self.__class__.__name__}(clip={self.identity!r}, cache={where!r}, cache_only={self.cache_only}, '
                f'preprocess={self.preprocess.cfg})')
