"""The frozen-CLIP contrastive head of GS-CLIP (paper section 4.1, eq. 6-10).

CLIP's text and image encoders are frozen; only the 3D encoder (and the
temperature) learn. The head owns the open_clip model, turns class names into
prompt-averaged text embeddings, looks up (or computes once and caches on disk)
the image embeddings of the object crops, and computes

    loss = w_t * InfoNCE(text, 3D) + w_i * InfoNCE(image, 3D)

with a learnable CLIP-style temperature. ``predict`` scores each 3D embedding
against the text embeddings of the evaluation vocabulary (zero-shot).

The open_clip model is held *outside* the module tree (a plain attribute), so
``parameters()``, the optimiser, ``state_dict()`` / checkpoints, ``.train()``
and DDP never see it. It is moved lazily to the device of the embeddings.
"""
import hashlib
import io
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule

from gsclip_mm.datasets.categories import SUNRGBD_TABLE1_ORDER
from gsclip_mm.registry import MODELS
from gsclip_mm.utils import atomic_write, readable_class_name

# Prompt templates in the spirit of CLIP / CLIP^2's point-cloud prompts.
DEFAULT_TEMPLATES = ('a point cloud of a {}.', 'a photo of a {}.', 'a 3D model of a {}.',
                     'a point cloud of the {} in a room.', 'a photo of the {} in a room.')
# The embedded default: a small open_clip ViT shipped with the package (random weights, seeded).
TINY_CLIP_NAME = 'GSCLIP-Tiny-64'
_CLIP_CONFIG_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'clip_configs')
# open_clip's default Hugging Face file names (open_clip.constants).
_HF_WEIGHT_FILES = ('open_clip_model.safetensors', 'open_clip_pytorch_model.bin')


def _register_embedded_configs() -> None:
    """Make the package's small open_clip configs known to open_clip (idempotent)."""
    import open_clip
    if TINY_CLIP_NAME in open_clip.list_models():
        return
    if not osp.isfile(osp.join(_CLIP_CONFIG_DIR, f'{TINY_CLIP_NAME}.json')):
        raise FileNotFoundError(f'the embedded open_clip config {TINY_CLIP_NAME}.json is missing from '
                                f'{_CLIP_CONFIG_DIR}; reinstall gsclip_mm (package data)')
    open_clip.add_model_config(_CLIP_CONFIG_DIR)


def _no_weights_message(model_name: str, pretrained: str, looked_in: Sequence[str]) -> str:
    where = '\n  '.join(looked_in) if looked_in else '(no download source known)'
    return (f'open_clip weights {model_name!r} / pretrained={pretrained!r} are not available locally and this '
            f'machine has no network. Looked in:\n  {where}\n'
            f'Download them where there is network (e.g. `python -c "import open_clip; '
            f"open_clip.create_model('{model_name}', pretrained='{pretrained}')\"`), copy the checkpoint here, and "
            f'point `pretrained` at the local file, e.g. --cfg-options '
            f'model.head.pretrained=/path/to/{model_name}.bin (or set pretrained=None for the untrained default).')


def resolve_pretrained(model_name: str, pretrained: Optional[str],
                       cache_dir: Optional[str] = None) -> Tuple[Optional[str], Dict]:
    """Map ``pretrained`` to a local checkpoint file without touching the network.

    Args:
        model_name: open_clip architecture name, e.g. ``'ViT-B-16'``.
        pretrained: None (random weights), a local file path, or an open_clip tag
            (e.g. ``'openai'``) whose weights must already be in the local
            Hugging Face / open_clip URL cache.
        cache_dir: open_clip's ``cache_dir`` if one was used to download.

    Returns:
        ``(path or None, tag_cfg)``: the file to load, and the tag's open_clip
        pretrained config (mean/std, quick_gelu), empty for files.

    Raises:
        FileNotFoundError: with instructions when the weights are not local.
    """
    if pretrained is None:
        return None, {}
    import open_clip
    path = osp.expanduser(str(pretrained))
    if osp.isfile(path):
        return path, {}
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not tag_cfg:
        if osp.sep in path or path.endswith(('.pt', '.pth', '.bin', '.safetensors')):
            raise FileNotFoundError(f'CLIP checkpoint file not found: {path!r} (model.head.pretrained)')
        raise FileNotFoundError(
            f'pretrained={pretrained!r} is neither a local file nor an open_clip tag of {model_name!r} '
            f'(tags: {open_clip.list_pretrained_tags_by_model(model_name)}). ' +
            _no_weights_message(model_name, pretrained, []))
    looked_in = []
    if tag_cfg.get('file'):
        if osp.isfile(tag_cfg['file']):
            return tag_cfg['file'], tag_cfg
        looked_in.append(tag_cfg['file'])
    if tag_cfg.get('hf_hub'):
        from huggingface_hub import try_to_load_from_cache
        # open_clip's convention: 'org/repo/' (default file names) or 'org/repo/file.bin'
        repo_id, filename = osp.split(tag_cfg['hf_hub'])
        names = [filename] if filename else list(_HF_WEIGHT_FILES)
        if filename.endswith(('.bin', '.pth')):  # open_clip prefers a safetensors sibling
            names.insert(0, filename[:-4] + '.safetensors')
        for name in names:
            hit = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(hit, str) and osp.isfile(hit):
                return hit, tag_cfg
            looked_in.append(f'Hugging Face cache: {repo_id}/{name}')
    if tag_cfg.get('url'):
        url_file = osp.join(cache_dir or osp.expanduser('~/.cache/clip'), osp.basename(tag_cfg['url']))
        if osp.isfile(url_file):
            return url_file, tag_cfg
        looked_in.append(url_file)
    raise FileNotFoundError(_no_weights_message(model_name, pretrained, looked_in))


def build_frozen_clip(model_name: str, pretrained: Optional[str], clip_seed: int = 0,
                      cache_dir: Optional[str] = None) -> nn.Module:
    """Build an open_clip model, frozen and in eval mode.

    With ``pretrained=None`` the weights are random but deterministic: the
    construction runs under ``torch.manual_seed(clip_seed)`` inside a forked
    RNG, so the global random state is untouched.
    """
    import open_clip
    _register_embedded_configs()
    path, tag_cfg = resolve_pretrained(model_name, pretrained, cache_dir)
    kwargs = {}
    if tag_cfg:  # loading a tag's file by path: keep the tag's activation and normalisation
        kwargs['force_quick_gelu'] = bool(tag_cfg.get('quick_gelu', False))
        kwargs['force_preprocess_cfg'] = {k: tag_cfg[k] for k in ('mean', 'std') if k in tag_cfg}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(clip_seed)
        try:
            # pretrained_text/image=False: never fetch tower weights for a randomly initialised model
            model = open_clip.create_model(model_name, pretrained=path, pretrained_text=False,
                                           pretrained_image=False, **kwargs)
        except RuntimeError as e:
            if 'not found' in str(e) and 'Model config' in str(e):
                raise ValueError(f'unknown open_clip model_name {model_name!r} (model.head.model_name)') from e
            raise
    model.requires_grad_(False)
    return model.eval()


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor,
             groups: Optional[torch.Tensor] = None, symmetric: bool = True) -> torch.Tensor:
    """CLIP's InfoNCE between paired rows of ``a`` and ``b``.

    Args:
        a: ``[B, D]`` L2-normalised (the 3D embeddings).
        b: ``[B, D]`` L2-normalised (text or image embeddings), ``b[i]`` pairs ``a[i]``.
        logit_scale: scalar, the inverse temperature.
        groups: ``[B]`` int, optional. Rows ``i != j`` with the same group id are
            *not negatives of each other*: their logits are masked out (set to
            -inf) in both directions, so a batch with two chairs does not push a
            chair away from the other chair's text. With identical text
            embeddings per class this equals a softmax over the batch's unique
            classes in the 3D->text direction.
        symmetric: average the a->b and b->a cross-entropies (CLIP), else a->b only.

    Returns:
        Scalar loss.
    """
    assert a.ndim == 2 and a.shape == b.shape, f'a {tuple(a.shape)} and b {tuple(b.shape)} must both be [B, D]'
    logits = logit_scale * a @ b.t()  # [B, B]; row i: a_i against every b_j
    if groups is not None:
        assert groups.shape == (a.shape[0], ), f'groups must be [B], got {tuple(groups.shape)}'
        same = groups[:, None] == groups[None, :]  # [B, B]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float('-inf'))
    target = torch.arange(a.shape[0], device=a.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.t(), target))
    return loss


def cosine_similarity_matrix(query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """``[Q, D] x [G, D] -> [Q, G]`` cosine similarities."""
    return F.normalize(query, dim=-1) @ F.normalize(gallery, dim=-1).t()


def retrieval_ranks(query: torch.Tensor, gallery: torch.Tensor,
                    target: Optional[torch.Tensor] = None) -> torch.Tensor:
    """0-based rank of each query's true gallery item under cosine similarity.

    Args:
        query: ``[Q, D]``; gallery: ``[G, D]``.
        target: ``[Q]`` long, index of each query's match in the gallery
            (default ``arange(Q)``: paired rows, e.g. 3D i <-> image i).

    Returns:
        ``[Q]`` long; 0 means retrieved first. Ties count against the query.
    """
    sim = cosine_similarity_matrix(query, gallery)  # [Q, G]
    if target is None:
        assert query.shape[0] == gallery.shape[0], 'paired retrieval needs Q == G'
        target = torch.arange(query.shape[0], device=sim.device)
    true = sim.gather(1, target.view(-1, 1))  # [Q, 1]
    beaten = sim >= true  # [Q, G]
    beaten.scatter_(1, target.view(-1, 1), False)
    return beaten.sum(dim=1)


def _npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in ``.npy`` format (serialised before any file is opened)."""
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@MODELS.register_module()
class FrozenCLIPHead(BaseModule):
    """Frozen open_clip text/image towers + the text/image-3D contrastive loss.

    Args:
        model_name (str): open_clip architecture. Default: the embedded small
            ViT ``'GSCLIP-Tiny-64'`` (64 px input, 128-d embeddings).
        pretrained (str | None): an open_clip tag already in the local cache, a
            local checkpoint file, or None for random weights (seeded by
            ``clip_seed``; :attr:`clip_untrained` is then True and every report
            must say so). Nothing is ever downloaded.
        clip_seed (int): seed of the random weights when ``pretrained`` is None.
        templates (Sequence[str]): prompt templates with one ``{}``; a class's
            text embedding is the L2-normalised mean of its templates' embeddings.
        eval_classes (Sequence[str]): the zero-shot vocabulary of ``predict``
            (raw names; default the paper's 10 SUN RGB-D classes).
        loss_text_weight, loss_img_weight (float): ``w_t``, ``w_i`` (paper 0.5 / 0.5).
            A zero weight drops the term (e.g. the "no image loss" ablation).
        init_logit_scale (float): initial inverse temperature (CLIP: 1/0.07).
        max_logit_scale (float): clamp of the inverse temperature (CLIP: 100).
        learn_logit_scale (bool): whether the temperature is trained.
        symmetric (bool): average both InfoNCE directions (CLIP) or 3D->x only.
        img_cache_dir (str | None): root of the on-disk image-embedding cache;
            default ``$GSCLIP_MM_CACHE_DIR/clip_image_embeddings``
            (``~/.cache/gsclip_mm`` when unset). False disables the disk cache.
        clip_cache_dir (str | None): open_clip's download ``cache_dir``, only
            consulted to find already-downloaded tag weights.
    """

    def __init__(self,
                 model_name: str = TINY_CLIP_NAME,
                 pretrained: Optional[str] = None,
                 clip_seed: int = 0,
                 templates: Sequence[str] = DEFAULT_TEMPLATES,
                 eval_classes: Sequence[str] = SUNRGBD_TABLE1_ORDER,
                 loss_text_weight: float = 0.5,
                 loss_img_weight: float = 0.5,
                 init_logit_scale: float = 1 / 0.07,
                 max_logit_scale: float = 100.0,
                 learn_logit_scale: bool = True,
                 symmetric: bool = True,
                 img_cache_dir=None,
                 clip_cache_dir: Optional[str] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        templates = tuple(templates)
        if not templates or any(t.count('{}') != 1 for t in templates):
            raise ValueError(f'each prompt template needs exactly one "{{}}", got {templates}')
        if not eval_classes:
            raise ValueError('eval_classes must name at least one class')
        self.model_name = model_name
        self.pretrained = pretrained
        self.clip_seed = clip_seed
        self.templates = templates
        self.eval_classes = tuple(eval_classes)
        self.loss_text_weight = float(loss_text_weight)
        self.loss_img_weight = float(loss_img_weight)
        self.max_logit_scale = float(max_logit_scale)
        self.symmetric = symmetric
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(init_logit_scale))),
                                        requires_grad=learn_logit_scale)

        clip = build_frozen_clip(model_name, pretrained, clip_seed, clip_cache_dir)
        # A plain attribute, not a submodule: invisible to parameters(), state_dict(), .to(), .train().
        object.__setattr__(self, '_clip', clip)
        import open_clip
        object.__setattr__(self, '_tokenizer', open_clip.get_tokenizer(model_name))
        pcfg = getattr(clip.visual, 'preprocess_cfg', {})
        size = pcfg.get('size', getattr(clip.visual, 'image_size', 224))
        self.clip_image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.clip_mean = tuple(float(v) for v in pcfg.get('mean', open_clip.OPENAI_DATASET_MEAN))
        self.clip_std = tuple(float(v) for v in pcfg.get('std', open_clip.OPENAI_DATASET_STD))
        model_cfg = open_clip.get_model_config(model_name)
        with torch.no_grad():  # e.g. 'hf-hub:' models have no local config: probe the text tower
            self.embed_dims = int(model_cfg['embed_dim'] if model_cfg else clip.encode_text(
                self._tokenizer(['a'])).shape[-1])
        # Set by GSCLIP from its data preprocessor: the crop -> tensor recipe is part of the cache key.
        self.img_preprocess_id = f'size={self.clip_image_size}'

        if img_cache_dir is None:
            root = os.environ.get('GSCLIP_MM_CACHE_DIR', osp.expanduser('~/.cache/gsclip_mm'))
            img_cache_dir = osp.join(root, 'clip_image_embeddings')
        self.img_cache_root = img_cache_dir or None
        self._text_cache: Dict[str, torch.Tensor] = {}  # readable name -> [D] on CPU
        self._img_cache: Dict[str, torch.Tensor] = {}  # cache file stem -> [D] on CPU
        self.num_images_encoded = 0  # encoder calls' image count (tests, logs)

    # ------------------------------------------------------------------ CLIP
    @property
    def clip(self) -> nn.Module:
        """The frozen open_clip model (not a registered submodule)."""
        return self._clip

    @property
    def clip_untrained(self) -> bool:
        """True when the CLIP has random weights: reports must say so."""
        return self.pretrained is None

    @property
    def clip_identity(self) -> str:
        """Name, weights and seed of the CLIP (what its embeddings depend on)."""
        if self.pretrained is None:
            return f'{self.model_name}|random(seed={self.clip_seed})'
        path = osp.expanduser(str(self.pretrained))
        if osp.isfile(path):
            st = os.stat(path)
            return f'{self.model_name}|file={osp.abspath(path)}|{st.st_size}|{int(st.st_mtime)}'
        return f'{self.model_name}|tag={self.pretrained}'

    def train(self, mode: bool = True) -> 'FrozenCLIPHead':
        """Train the head's own parameters; the CLIP always stays in eval mode."""
        super().train(mode)
        self._clip.eval()
        return self

    def _clip_on(self, device: torch.device) -> nn.Module:
        """The CLIP on ``device`` (moved once; it is outside ``.to()``'s reach)."""
        p = next(self._clip.parameters())
        if p.device != device:
            self._clip.to(device)
        return self._clip

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def text_embeddings(self, class_names: Sequence[str]) -> torch.Tensor:
        """``[K, D]`` prompt-averaged, L2-normalised text embeddings, on CPU.

        Computed once per readable class name and kept in memory.
        """
        names = [readable_class_name(n) for n in class_names]
        missing = sorted({n for n in names if n not in self._text_cache})
        if missing:
            device = next(self._clip.parameters()).device
            prompts = [t.format(n) for n in missing for t in self.templates]
            tokens = self._tokenizer(prompts).to(device)
            emb = F.normalize(self._clip.encode_text(tokens).float(), dim=-1)  # [M * T, D]
            emb = F.normalize(emb.view(len(missing), len(self.templates), -1).mean(dim=1), dim=-1)  # [M, D]
            for n, e in zip(missing, emb.cpu()):
                self._text_cache[n] = e
        return torch.stack([self._text_cache[n] for n in names])

    # ----------------------------------------------------------------- image
    def img_cache_dir(self) -> Optional[str]:
        """Folder of this CLIP + preprocessing's image embeddings (None: memory only)."""
        if self.img_cache_root is None:
            return None
        ident = f'{self.clip_identity}|{self.img_preprocess_id}'
        digest = hashlib.sha1(ident.encode()).hexdigest()[:16]
        return osp.join(self.img_cache_root, f'{self.model_name}-{digest}')

    def _cache_stem(self, crop_key: str) -> str:
        return hashlib.sha1(f'{self.clip_identity}|{self.img_preprocess_id}|{crop_key}'.encode()).hexdigest()

    def _cache_path(self, stem: str) -> Optional[str]:
        root = self.img_cache_dir()
        return None if root is None else osp.join(root, stem[:2], f'{stem}.npy')

    def _read_cached(self, stem: str) -> Optional[torch.Tensor]:
        if stem in self._img_cache:
            return self._img_cache[stem]
        path = self._cache_path(stem)
        if path is None or not osp.isfile(path):
            return None
        try:
            emb = torch.from_numpy(np.load(path))
        except (OSError, ValueError) as e:  # a truncated file cannot occur (atomic), but stay safe
            print_log(f'ignoring unreadable CLIP image-embedding cache file {path}: {e}', logger='current')
            return None
        if emb.shape != (self.embed_dims, ):
            return None
        self._img_cache[stem] = emb
        return emb

    def _write_manifest(self) -> None:
        root = self.img_cache_dir()
        path = None if root is None else osp.join(root, 'model.json')
        if path is None or osp.isfile(path):
            return
        atomic_write(path, json.dumps(dict(clip=self.clip_identity, preprocess=self.img_preprocess_id,
                                           untrained=self.clip_untrained), indent=1).encode())

    @torch.no_grad()
    def encode_images(self, imgs: torch.Tensor) -> torch.Tensor:
        """Run the frozen image tower: ``[B, 3, S, S]`` normalised -> ``[B, D]`` unit vectors."""
        assert imgs.ndim == 4 and imgs.shape[1] == 3 and imgs.shape[2:] == (self.clip_image_size, ) * 2, \
            f'imgs must be [B, 3, {self.clip_image_size}, {self.clip_image_size}], got {tuple(imgs.shape)}'
        self.num_images_encoded += imgs.shape[0]
        clip = self._clip_on(imgs.device)
        return F.normalize(clip.encode_image(imgs).float(), dim=-1)

    def image_embeddings(self, imgs: Optional[torch.Tensor], crop_keys: Sequence[str]) -> torch.Tensor:
        """``[B, D]`` image embeddings of the crops, from the cache where possible.

        Args:
            imgs: ``[B, 3, S, S]`` preprocessed crops, or None when every key is
                already cached (a points-only pipeline after a first epoch).
            crop_keys: ``B`` crop identifiers (:meth:`crop_cache_keys`: the
                crop's content where known, else its ``crop_key``).

        Misses are encoded once and written to memory and disk (atomically);
        the frozen encoder makes this exact.
        """
        stems = [self._cache_stem(k) for k in crop_keys]
        found = [self._read_cached(s) for s in stems]
        miss = [i for i, e in enumerate(found) if e is None]
        if miss:
            if imgs is None:
                raise ValueError(f'{len(miss)} crop(s) have no cached CLIP image embedding (e.g. '
                                 f'{crop_keys[miss[0]]!r}) and the batch carries no images: add the image '
                                 f'crop to the pipeline (LoadObjectImage + PackGSCLIPInputs) or set '
                                 f'loss_img_weight=0')
            new = self.encode_images(imgs[miss]).cpu()  # [M, D]
            if self.img_cache_root is not None:
                self._write_manifest()
            for i, e in zip(miss, new):
                self._img_cache[stems[i]] = e
                found[i] = e
                path = self._cache_path(stems[i])
                if path is not None:
                    atomic_write(path, _npy_bytes(e.numpy()))
        return torch.stack(found)

    @staticmethod
    def crop_cache_keys(data_samples: Sequence) -> list:
        """The image-embedding cache key of each sample's crop.

        The crop's content digest (metainfo ``crop_digest``, set by
        ``PackGSCLIPInputs``: the image file's SHA-256 + box, or the crop's
        pixels' SHA-256) so a changed image never reuses a stale embedding;
        the path-based ``crop_key`` only when no digest is known.
        """
        return [ds.metainfo.get('crop_digest') or _meta(ds, 'crop_key') for ds in data_samples]

    # ------------------------------------------------------------------ loss
    def temperature_scale(self) -> torch.Tensor:
        """The clamped inverse temperature ``exp(logit_scale)`` (scalar)."""
        return self.logit_scale.exp().clamp(max=self.max_logit_scale)

    def _check_embedding(self, embedding: torch.Tensor, n: int) -> None:
        if embedding.ndim != 2 or embedding.shape[1] != self.embed_dims or embedding.shape[0] != n:
            raise ValueError(f'3D embedding must be [B={n}, {self.embed_dims}] (the CLIP {self.model_name!r} '
                             f'width; set the backbone embed_dims to match), got {tuple(embedding.shape)}')

    def loss(self, embedding: torch.Tensor, imgs: Optional[torch.Tensor], data_samples: Sequence) -> dict:
        """Contrastive losses of a batch.

        Args:
            embedding: ``[B, D]`` 3D embeddings (not necessarily normalised).
            imgs: ``[B, 3, S, S]`` preprocessed crops or None (cached / no image loss).
            data_samples: ``B`` ``GSCLIPDataSample`` with metainfo ``class_name``
                and ``crop_digest`` or ``crop_key`` (:meth:`crop_cache_keys`).

        Returns:
            ``dict(loss_text=w_t * InfoNCE(text, 3D), loss_img=w_i * InfoNCE(image, 3D),
            logit_scale=...)``; a term with zero weight is omitted. Same-class
            texts (and repeated crops) in a batch are masked, not negatives.
        """
        self._check_embedding(embedding, len(data_samples))
        z = F.normalize(embedding, dim=-1)  # [B, D]
        self._clip_on(z.device)
        scale = self.temperature_scale()
        losses = {}
        if self.loss_text_weight > 0:
            names = [readable_class_name(_meta(ds, 'class_name')) for ds in data_samples]
            text = self.text_embeddings(names).to(z)  # [B, D]
            groups = _group_ids(names, z.device)
            losses['loss_text'] = self.loss_text_weight * info_nce(z, text, scale, groups, self.symmetric)
        if self.loss_img_weight > 0:
            keys = self.crop_cache_keys(data_samples)
            img = self.image_embeddings(imgs, keys).to(z)  # [B, D]
            losses['loss_img'] = self.loss_img_weight * info_nce(z, img, scale, _group_ids(keys, z.device),
                                                                 self.symmetric)
        losses['logit_scale'] = scale.detach()
        return losses

    # --------------------------------------------------------------- predict
    @torch.no_grad()
    def predict(self, embedding: torch.Tensor, data_samples: Sequence) -> list:
        """Zero-shot scores over :attr:`eval_classes`.

        Sets on each sample: ``pred_score`` ``[C]`` (cosine similarity to each
        class's text embedding), ``pred_label`` ``[1]`` (the first maximal
        score, -1 when a score is non-finite: the metric's rule,
        ``gsclip_mm.structures.top1_labels``), ``embedding`` ``[D]``
        (L2-normalised), and metainfo ``score_classes`` (the vocabulary, raw
        names), ``clip_untrained``, ``clip_model``.
        """
        self._check_embedding(embedding, len(data_samples))
        z = F.normalize(embedding.float(), dim=-1)  # [B, D]
        self._clip_on(z.device)
        scores = z @ self.text_embeddings(self.eval_classes).to(z).t()  # [B, C]
        for ds, s, e in zip(data_samples, scores, z):
            ds.set_pred_score(s)
            ds.embedding = e
            ds.set_metainfo(self._prediction_meta())
        return list(data_samples)

    def predict_unfittable(self, data_samples: Sequence) -> list:
        """Mark objects the model could not see (no Gaussians) as predicting nothing.

        Sets ``pred_score`` ``[C]`` all NaN over :attr:`eval_classes`,
        ``pred_label`` ``[-1]`` (no prediction), no ``embedding``, and the same
        metainfo as :meth:`predict`; the metric scores them as misses.
        """
        for ds in data_samples:
            ds.set_pred_score(torch.full((len(self.eval_classes), ), float('nan')))
            ds.set_metainfo(self._prediction_meta())
        return list(data_samples)

    def _prediction_meta(self) -> dict:
        return dict(score_classes=self.eval_classes, clip_untrained=self.clip_untrained,
                    clip_model=self.clip_identity)

    # ------------------------------------------------------------- retrieval
    def text_to_shape(self, queries: Sequence[str], shape_embeddings: torch.Tensor,
                      topk: int = 5) -> Tuple[torch.Tensor, torch.Tensor]:
        """Retrieve 3D objects by text: ``[N, D]`` embeddings -> top-k per query.

        Returns ``(scores [Q, k], indices [Q, k])`` into ``shape_embeddings``.
        """
        text = self.text_embeddings(queries).to(shape_embeddings)  # [Q, D]
        sim = cosine_similarity_matrix(text, shape_embeddings)  # [Q, N]
        return sim.topk(min(topk, sim.shape[1]), dim=1)

    def shape_to_image_ranks(self, shape_embeddings: torch.Tensor, crop_keys: Sequence[str],
                             imgs: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Rank of each object's own crop among all crops, by its 3D embedding.

        Args:
            shape_embeddings: ``[N, D]``; crop_keys: ``N`` keys (row-paired);
            imgs: ``[N, 3, S, S]`` for crops not cached yet.

        Returns:
            ``[N]`` 0-based ranks (``(ranks < k).float().mean()`` is recall@k).
        """
        img = self.image_embeddings(imgs, crop_keys).to(shape_embeddings)
        return retrieval_ranks(shape_embeddings, img)

    def extra_repr(self) -> str:
        state = 'untrained (random, seed %d)' % self.clip_seed if self.clip_untrained else str(self.pretrained)
        return (f'clip={self.model_name!r} weights={state}, embed_dims={self.embed_dims}, '
                f'templates={len(self.templates)}, eval_classes={len(self.eval_classes)}, '
                f'w_text={self.loss_text_weight}, w_img={self.loss_img_weight}')


def _meta(data_sample, key: str):
    """A required metainfo field of a data sample, with a clear error."""
    value = data_sample.metainfo.get(key) if hasattr(data_sample, 'metainfo') else None
    if value is None:
        raise KeyError(f'data sample lacks metainfo {key!r} (set by PackGSCLIPInputs); metainfo keys: '
                       f'{sorted(getattr(data_sample, "metainfo", {}))}')
    return value


def _group_ids(keys: Sequence[str], device) -> torch.Tensor:
    """``[B]`` ids, equal where ``keys`` are equal (for masking duplicates)."""
    index: Dict[str, int] = {}
    return torch.tensor([index.setdefault(k, len(index)) for k in keys], dtype=torch.long, device=device)
