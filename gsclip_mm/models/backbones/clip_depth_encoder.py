"""CLIP's visual tower over multi-view depth maps (PointCLIP; CLIP2Point's depth encoder).

``trainable=False``: PointCLIP's training-free encoder. The frozen open_clip
visual tower is held *outside* the module tree (like ``FrozenCLIPHead``'s
CLIP), so ``parameters()``, ``state_dict()`` / checkpoints, ``.train()`` and
DDP never see it; it moves lazily to the device of the views.

``trainable=True``: CLIP2Point's depth encoder, a deep copy of CLIP's visual
tower as the submodule ``visual``, initialised from CLIP's weights and
trained. Checkpoints carry it under ``<attribute>.visual.*``:
``depth_encoder.visual.*`` in ``CLIP2PointPretrainer``, ``backbone.visual.*``
in ``GSCLIP``. Load a pre-trainer's encoder into any ``CLIPDepthEncoder`` with
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='depth_encoder.')``
(applied by ``init_weights``, strictly) or :func:`load_depth_encoder_weights`.
"""
import copy
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from gsclip_mm.clip import TINY_CLIP_NAME, build_frozen_clip, clip_embed_dims
from gsclip_mm.registry import MODELS

AGGREGATES = ('mean', 'none')


def load_depth_encoder_weights(encoder: nn.Module, checkpoint: str, prefix: str = 'depth_encoder.') -> None:
    """Load the ``prefix``-ed weights of a checkpoint into ``encoder``, strictly.

    Args:
        encoder: a trainable ``CLIPDepthEncoder`` (its keys are ``visual.*``).
        checkpoint: a checkpoint file (an MMEngine checkpoint or a bare state dict).
        prefix: the encoder's attribute path in the saving model, with the
            trailing dot: ``'depth_encoder.'`` (``CLIP2PointPretrainer``),
            ``'backbone.'`` (``GSCLIP``), ``''`` (the encoder itself).

    Raises:
        KeyError: the checkpoint has no key under ``prefix``.
        RuntimeError: the keys under ``prefix`` do not fit the encoder exactly
            (e.g. another CLIP architecture).
    """
    from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_with_prefix
    if prefix:
        state = _load_checkpoint_with_prefix(prefix, checkpoint, map_location='cpu')
    else:
        state = _load_checkpoint(checkpoint, map_location='cpu')
        state = state.get('state_dict', state)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise RuntimeError(f'the weights under {prefix!r} of {checkpoint} do not fit the depth encoder: {e}') \
            from None


@MODELS.register_module()
class CLIPDepthEncoder(BaseModule):
    """Multi-view depth maps -> CLIP image-space features.

    Args:
        clip (dict): the config's ``clip`` settings: ``model_name``,
            ``pretrained``, ``clip_seed`` (and optionally ``clip_cache_dir``),
            as ``FrozenCLIPHead`` takes them.
        trainable (bool): False: the frozen CLIP visual tower (PointCLIP);
            True: a trainable copy of it, ``self.visual`` (CLIP2Point).
        aggregate (str): ``'mean'``: forward returns ``[B, D]``, the
            L2-normalised (weighted) mean of the unit view features (PointCLIP
            sums view logits, which ranks classes the same); ``'none'``:
            ``[B, V, D]`` unit view features.
        view_weights (Sequence[float] | None): per-view weights of the mean
            (PointCLIP's view weights); None: equal. Their count must equal V.
        init_cfg (dict | None): None (CLIP's weights), or
            ``dict(type='Pretrained', checkpoint=..., prefix='depth_encoder.')``
            to load a pre-trained encoder (trainable only; strict).
    """

    def __init__(self,
                 clip: dict,
                 trainable: bool = False,
                 aggregate: str = 'mean',
                 view_weights: Optional[Sequence[float]] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if aggregate not in AGGREGATES:
            raise ValueError(f'aggregate must be one of {AGGREGATES}, got {aggregate!r}')
        if init_cfg is not None and (init_cfg.get('type') != 'Pretrained' or not trainable):
            raise ValueError(f'CLIPDepthEncoder takes only init_cfg=dict(type="Pretrained", ...) and only with '
                             f'trainable=True (its other weights are CLIP\'s); got {init_cfg}, trainable={trainable}')
        self.trainable = bool(trainable)
        self.aggregate = aggregate
        self.view_weights = None if view_weights is None else tuple(float(w) for w in view_weights)
        model_name = clip.get('model_name', TINY_CLIP_NAME)
        self.embed_dims = clip_embed_dims(model_name)
        model = build_frozen_clip(model_name, clip.get('pretrained'), clip.get('clip_seed', 0),
                                  clip.get('clip_cache_dir'))
        if self.trainable:
            self.visual = copy.deepcopy(model.visual).requires_grad_(True)  # CLIP2Point: init from CLIP
        else:
            # A plain attribute, not a submodule: invisible to parameters(), state_dict(), .to(), .train().
            object.__setattr__(self, '_frozen_visual', model.visual)

    # ------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Keep CLIP's weights, or load a pre-trained encoder (``init_cfg`` Pretrained, strict)."""
        if self.init_cfg is not None and not self._is_init:
            load_depth_encoder_weights(self, self.init_cfg['checkpoint'], self.init_cfg.get('prefix', ''))
        self._is_init = True

    def train(self, mode: bool = True) -> 'CLIPDepthEncoder':
        """The trainable tower follows ``mode``; a frozen one stays in eval mode."""
        super().train(mode)
        if not self.trainable:
            self._frozen_visual.eval()
        return self

    def _tower(self, device: torch.device) -> nn.Module:
        if self.trainable:
            return self.visual
        if next(self._frozen_visual.parameters()).device != device:
            self._frozen_visual.to(device)  # outside .to()'s reach: moved once, on first use
        return self._frozen_visual

    # ------------------------------------------------------------ forward
    def encode_views(self, views: torch.Tensor) -> torch.Tensor:
        """``[B, V, 3, S, S]`` CLIP-normalised depth maps -> ``[B, V, D]`` unit view features."""
        assert views.ndim == 5 and views.shape[2] == 3, f'views must be [B, V, 3, S, S], got {tuple(views.shape)}'
        b, v = views.shape[:2]
        tower = self._tower(views.device)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            feats = tower(views.flatten(0, 1).float())  # [B*V, D]
        return F.normalize(feats.float(), dim=-1).view(b, v, -1)

    def aggregate_views(self, feats: torch.Tensor) -> torch.Tensor:
        """``[B, V, D]`` view features -> ``[B, D]`` unit (weighted) mean."""
        assert feats.ndim == 3, f'feats must be [B, V, D], got {tuple(feats.shape)}'
        if self.view_weights is None:
            return F.normalize(feats.mean(dim=1), dim=-1)
        if len(self.view_weights) != feats.shape[1]:
            raise ValueError(f'{len(self.view_weights)} view_weights for {feats.shape[1]} views')
        w = feats.new_tensor(self.view_weights)  # [V]
        return F.normalize((feats * w[None, :, None]).sum(dim=1), dim=-1)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        """``[B, V, 3, S, S]`` -> ``[B, D]`` (aggregate ``'mean'``) or ``[B, V, D]`` (``'none'``), unit norm."""
        feats = self.encode_views(views)
        return feats if self.aggregate == 'none' else self.aggregate_views(feats)

    def extra_repr(self) -> str:
        return (f'trainable={self.trainable}, aggregate={self.aggregate!r}, view_weights={self.view_weights}, '
                f'embed_dims={self.embed_dims}')
