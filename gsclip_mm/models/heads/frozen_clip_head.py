"""The frozen-CLIP contrastive head of GS-CLIP (paper section 4.1, eq. 6-10).

CLIP's text and image encoders are frozen; only the 3D encoder (and the
temperature) learn. The head turns class names into prompt-averaged text
embeddings with the CLIP's text tower and computes

    loss = w_t * InfoNCE(text, 3D) + w_i * InfoNCE(image, 3D)

with a learnable CLIP-style temperature; the image embeddings of the object
crops come with the batch (the pipeline's ``LoadCLIPImageEmbedding``, filled
ahead by ``tools/extract_image_embeddings.py``), so a training step reads and
writes no file. ``predict`` scores each 3D embedding against the text
embeddings of the evaluation vocabulary (zero-shot).

The open_clip model is held *outside* the module tree (a plain attribute), so
``parameters()``, the optimiser, ``state_dict()`` / checkpoints, ``.train()``
and DDP never see it. It is moved lazily to the device of the embeddings.
"""
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from gsclip_mm.clip import TINY_CLIP_NAME, build_frozen_clip, clip_embed_dims, clip_identity
from gsclip_mm.registry import MODELS
from gsclip_mm.structures.categories import resolve_classes
from gsclip_mm.utils import readable_class_name

# Prompt templates in the spirit of CLIP / CLIP^2's point-cloud prompts.
DEFAULT_TEMPLATES = ('a point cloud of a {}.', 'a photo of a {}.', 'a 3D model of a {}.',
                     'a point cloud of the {} in a room.', 'a photo of the {} in a room.')


@MODELS.register_module()
class FrozenCLIPHead(BaseModule):
    """Frozen open_clip text tower + the text/image-3D contrastive loss.

    Args:
        model_name (str): open_clip architecture. Default: the embedded small
            ViT ``'GSCLIP-Tiny-64'`` (64 px input, 128-d embeddings).
        pretrained (str | None): an open_clip tag already in the local cache, a
            local checkpoint file, or None for random weights (seeded by
            ``clip_seed``; :attr:`clip_untrained` is then True and every report
            must say so). Nothing is ever downloaded.
        clip_seed (int): seed of the random weights when ``pretrained`` is None.
        clip_cache_dir (str | None): open_clip's download ``cache_dir``, only
            consulted to find already-downloaded tag weights.
            (These four are the config's ``clip`` settings; the pipeline's
            ``LoadCLIPImageEmbedding`` reads the same.)
        templates (Sequence[str]): prompt templates with one ``{}``; a class's
            text embedding is the L2-normalised mean of its templates' embeddings.
        eval_classes (str | Sequence[str]): the zero-shot vocabulary of
            ``predict``: raw names, or a vocabulary name of
            :mod:`gsclip_mm.structures.categories` (default ``'sunrgbd10'``, the
            paper's 10 SUN RGB-D classes in its Table 1 order; ``'sunrgbd37'``).
        loss (dict | None): the contrastive loss, default ``dict(type='InfoNCELoss')``
            (symmetric, same-class / same-crop pairs masked).
        loss_text_weight, loss_img_weight (float): ``w_t``, ``w_i`` (paper 0.5 / 0.5).
            A zero weight drops the term; with ``loss_img_weight=0`` (the "no
            image loss" ablation) batches need no image embeddings.
        init_logit_scale (float): initial inverse temperature (CLIP: 1/0.07).
        max_logit_scale (float): clamp of the inverse temperature (CLIP: 100).
        learn_logit_scale (bool): whether the temperature is trained.
    """

    def __init__(self,
                 model_name: str = TINY_CLIP_NAME,
                 pretrained: Optional[str] = None,
                 clip_seed: int = 0,
                 clip_cache_dir: Optional[str] = None,
                 templates: Sequence[str] = DEFAULT_TEMPLATES,
                 eval_classes: Union[str, Sequence[str]] = 'sunrgbd10',
                 loss: Optional[dict] = None,
                 loss_text_weight: float = 0.5,
                 loss_img_weight: float = 0.5,
                 init_logit_scale: float = 1 / 0.07,
                 max_logit_scale: float = 100.0,
                 learn_logit_scale: bool = True,
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
        self.eval_classes = resolve_classes(eval_classes)
        self.loss_module = MODELS.build(loss if loss is not None else dict(type='InfoNCELoss'))
        self.loss_text_weight = float(loss_text_weight)
        self.loss_img_weight = float(loss_img_weight)
        self.max_logit_scale = float(max_logit_scale)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(init_logit_scale))),
                                        requires_grad=learn_logit_scale)

        # Fixed at construction (a weights file's identity includes its size and mtime: no stat per batch).
        self._clip_identity = clip_identity(model_name, pretrained, clip_seed)
        clip = build_frozen_clip(model_name, pretrained, clip_seed, clip_cache_dir)
        # A plain attribute, not a submodule: invisible to parameters(), state_dict(), .to(), .train().
        object.__setattr__(self, '_clip', clip)
        import open_clip
        object.__setattr__(self, '_tokenizer', open_clip.get_tokenizer(model_name))
        self.embed_dims = clip_embed_dims(model_name)
        self._text_cache: Dict[str, torch.Tensor] = {}  # readable name -> [D] on CPU

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
        """Name, weights and seed of the CLIP (``gsclip_mm.clip.clip_identity``, taken when it was loaded)."""
        return self._clip_identity

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

    # ------------------------------------------------------------------ loss
    def temperature_scale(self) -> torch.Tensor:
        """The clamped inverse temperature ``exp(logit_scale)`` (scalar)."""
        return self.logit_scale.exp().clamp(max=self.max_logit_scale)

    def _check_embedding(self, embedding: torch.Tensor, n: int, what: str = '3D embedding') -> None:
        if embedding.ndim != 2 or embedding.shape[1] != self.embed_dims or embedding.shape[0] != n:
            raise ValueError(f'{what} must be [B={n}, {self.embed_dims}] (the CLIP {self.model_name!r} '
                             f'width; set the backbone embed_dims to match), got {tuple(embedding.shape)}')

    def _check_img_source(self, data_samples: Sequence) -> None:
        """The batch's image embeddings must come from this head's CLIP (metainfo ``img_embed_clip``)."""
        mine = self.clip_identity
        for ds in data_samples:
            theirs = ds.metainfo.get('img_embed_clip')
            if theirs is not None and theirs != mine:
                raise ValueError(f'the batch\'s CLIP image embeddings come from {theirs!r} but the head\'s CLIP is '
                                 f'{mine!r}: give LoadCLIPImageEmbedding and the head the same CLIP (the '
                                 f'config\'s `clip` settings)')

    def loss(self, embedding: torch.Tensor, img_embed: Optional[torch.Tensor], data_samples: Sequence) -> dict:
        """Contrastive losses of a batch.

        Args:
            embedding: ``[B, D]`` 3D embeddings (not necessarily normalised).
            img_embed: ``[B, D]`` CLIP image embeddings of the crops (the
                batch's ``img_embed`` input), or None when ``loss_img_weight`` is 0.
            data_samples: ``B`` ``GSCLIPDataSample`` with metainfo ``class_name``.

        Returns:
            ``dict(loss_text=w_t * InfoNCE(text, 3D), loss_img=w_i * InfoNCE(image, 3D),
            logit_scale=...)``; a term with zero weight is omitted. Same-class
            texts and repeated crops (equal image embeddings) in a batch are
            one group each: not negatives of each other (``InfoNCELoss``).
        """
        self._check_embedding(embedding, len(data_samples))
        z = F.normalize(embedding, dim=-1)  # [B, D]
        self._clip_on(z.device)
        scale = self.temperature_scale()
        losses = {}
        if self.loss_text_weight > 0:
            names = [readable_class_name(_meta(ds, 'class_name')) for ds in data_samples]
            text = self.text_embeddings(names).to(z)  # [B, D]
            losses['loss_text'] = self.loss_text_weight * self.loss_module(z, text, scale, _group_ids(names, z.device))
        if self.loss_img_weight > 0:
            if img_embed is None:
                raise ValueError('loss_img_weight > 0 but the batch has no CLIP image embeddings (input '
                                 '"img_embed"): put LoadCLIPImageEmbedding (with the config\'s `clip` settings) '
                                 'before PackGSCLIPInputs in the training pipeline, or set loss_img_weight=0')
            self._check_embedding(img_embed, len(data_samples), 'img_embed')
            self._check_img_source(data_samples)
            img = F.normalize(img_embed.to(z), dim=-1)  # [B, D]
            groups = torch.unique(img, dim=0, return_inverse=True)[1]  # a crop repeated in the batch: one group
            losses['loss_img'] = self.loss_img_weight * self.loss_module(z, img, scale, groups)
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

    def _prediction_meta(self) -> dict:
        return dict(score_classes=self.eval_classes, clip_untrained=self.clip_untrained,
                    clip_model=self.clip_identity)

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
