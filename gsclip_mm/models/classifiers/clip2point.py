"""CLIP2Point's image-depth pre-training of a depth encoder (Huang et al., 2023, fig. 2).

A depth encoder initialised from CLIP's visual tower is trained, CLIP's image
encoder frozen, with two NT-Xent losses:

* intra-modality: between the depth features of two renders of the same
  object whose camera distances differ (``depth_views`` / ``depth_views_pair``);
* cross-modality: between the object's CLIP image feature and the averaged
  depth feature.

The image side is the crops' cached CLIP image embeddings
(``inputs['img_embed']``, the pipeline's ``LoadCLIPImageEmbedding``), so no
image tower runs per step. Zero-shot afterwards is ``GSCLIP`` with a
``CLIPDepthEncoder(trainable=True)`` backbone loaded from this model's
``depth_encoder.*`` keys (``configs/clip2point/``).
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from gsclip_mm.registry import MODELS
from .base import GSCLIPBaseModel


@MODELS.register_module()
class CLIP2PointPretrainer(GSCLIPBaseModel):
    """Image-depth pre-training (CLIP2Point) with a zero-shot ``predict`` for validation.

    Args:
        depth_encoder (dict): a ``CLIPDepthEncoder`` config; must be
            ``trainable=True`` (its weights are saved as ``depth_encoder.visual.*``).
        head (dict): a ``FrozenCLIPHead`` config, used only by ``predict``
            (zero-shot against its text embeddings); give it
            ``learn_logit_scale=False``, it has nothing to learn here.
        loss (dict): the contrastive loss of both terms; authors' code:
            ``NTXentLoss`` with temperature 0.07 (the default).
        loss_intra_weight, loss_cross_weight (float): fixed weights of the two
            terms; authors' code: 1 and 1.
        learn_balance (bool): authors' code (``models/clip2point.py``): the
            intra term is divided by a learned ``w ** 2`` with a
            ``log(w + 1)`` penalty (``w`` starts at 1); the paper's text does
            not state it. False: the fixed weights alone.
        intra_per_view (bool): True (the paper's pairing: one camera view, two
            distances): the intra loss is the mean over views ``v`` of NT-Xent
            between view ``v`` of both renders, negatives the other objects at
            that view. False (ours): one NT-Xent between the view-averaged
            features of both renders.
        cross_with_pair (bool): True (authors' code averages the pair's two
            features): the cross term's depth feature is the mean over the
            views of both renders; False: of ``depth_views`` only.
        data_preprocessor (dict | None): default ``GSCLIPDataPreprocessor``.

    Inputs (stacked): ``depth_views`` and ``depth_views_pair`` ``[B, V, 3, S, S]``
    (CLIP-normalised), ``img_embed`` ``[B, D]``. ``forward`` modes:
        - ``'tensor'``: ``[B, D]`` view-averaged unit depth features of ``depth_views``.
        - ``'loss'``: ``loss_intra``, ``loss_cross`` (weighted; with
          ``learn_balance`` also ``loss_balance``), and the logged
          ``balance_weight``.
        - ``'predict'``: the data samples with the head's zero-shot scores.
    """

    def __init__(self,
                 depth_encoder: dict,
                 head: dict,
                 loss: Optional[dict] = None,
                 loss_intra_weight: float = 1.0,
                 loss_cross_weight: float = 1.0,
                 learn_balance: bool = True,
                 intra_per_view: bool = True,
                 cross_with_pair: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.depth_encoder = MODELS.build(depth_encoder)
        if not getattr(self.depth_encoder, 'trainable', False):
            raise ValueError('CLIP2PointPretrainer trains its depth encoder: give it trainable=True')
        self.head = MODELS.build(head)
        self.loss_module = MODELS.build(loss if loss is not None else dict(type='NTXentLoss', temperature=0.07))
        self.loss_intra_weight = float(loss_intra_weight)
        self.loss_cross_weight = float(loss_cross_weight)
        self.intra_per_view = bool(intra_per_view)
        self.cross_with_pair = bool(cross_with_pair)
        # authors' code: nn.Parameter(torch.ones([])); None when the weights are fixed
        self.balance_weight = torch.nn.Parameter(torch.ones(())) if learn_balance else None

    def extract_feat(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, D]`` view-averaged unit depth features of ``inputs['depth_views']`` (the ``'tensor'`` mode)."""
        return self.depth_encoder.aggregate_views(self.depth_encoder.encode_views(_get(inputs, 'depth_views')))

    def _encode_pair(self, inputs: Dict[str, torch.Tensor]):
        """Both renders through the encoder in one pass -> two ``[B, V, D]`` unit features."""
        views, pair = _get(inputs, 'depth_views'), _get(inputs, 'depth_views_pair')
        if views.shape != pair.shape:
            raise ValueError(f'depth_views {tuple(views.shape)} and depth_views_pair {tuple(pair.shape)} differ')
        feats = self.depth_encoder.encode_views(torch.cat([views, pair]))  # [2B, V, D]
        return feats.chunk(2)

    def intra_loss(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        """NT-Xent between the two renders' ``[B, V, D]`` features (see ``intra_per_view``)."""
        if self.intra_per_view:
            return torch.stack([self.loss_module(f1[:, v], f2[:, v]) for v in range(f1.shape[1])]).mean()
        agg = self.depth_encoder.aggregate_views
        return self.loss_module(agg(f1), agg(f2))

    def cross_loss(self, f1: torch.Tensor, f2: torch.Tensor, img_embed: torch.Tensor) -> torch.Tensor:
        """NT-Xent between the averaged depth feature and the crops' ``[B, D]`` CLIP image embeddings."""
        depth = self.depth_encoder.aggregate_views(f1)  # [B, D]
        if self.cross_with_pair:
            depth = F.normalize(depth + self.depth_encoder.aggregate_views(f2), dim=-1)
        return self.loss_module(depth, img_embed.to(depth))

    def loss(self, inputs: Dict[str, torch.Tensor], data_samples: list) -> Dict[str, torch.Tensor]:
        """The weighted intra- and cross-modality losses (see the class docstring)."""
        f1, f2 = self._encode_pair(inputs)
        img = _get(inputs, 'img_embed')
        if img.shape[0] != f1.shape[0]:
            raise ValueError(f'img_embed has {img.shape[0]} rows for {f1.shape[0]} objects')
        intra = self.loss_intra_weight * self.intra_loss(f1, f2)
        losses = dict(loss_cross=self.loss_cross_weight * self.cross_loss(f1, f2, img))
        if self.balance_weight is None:
            losses['loss_intra'] = intra
        else:  # authors' code: intra / w^2 + log(w + 1)
            w = self.balance_weight
            losses['loss_intra'] = intra / w**2
            losses['loss_balance'] = torch.log(w + 1)
            losses['balance_weight'] = w.detach()
        return losses


def _get(inputs: Dict[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in inputs:
        raise KeyError(f'CLIP2PointPretrainer needs inputs[{key!r}]; batch has {sorted(inputs)} (render with '
                       f'pair_distance_jitter > 0 for depth_views_pair; LoadCLIPImageEmbedding for img_embed)')
    return inputs[key]
