"""GS-CLIP: a 3D encoder trained against a frozen CLIP, used zero-shot."""
import logging
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log

from gsclip_mm.registry import MODELS
from gsclip_mm.structures import is_unfittable
from .base import GSCLIPBaseModel


@MODELS.register_module()
class GSCLIP(GSCLIPBaseModel):
    """The GS-CLIP model: backbone (3D encoder) + frozen-CLIP head.

    Args:
        backbone (dict): config of the 3D encoder (e.g. ``PointNet2GAF``); its
            forward takes ``[B, N, C]`` and returns a dict with ``embedding``
            ``[B, D]`` (or the embedding tensor itself).
        head (dict): config of ``FrozenCLIPHead``.
        data_preprocessor (dict | None): default ``GSCLIPDataPreprocessor``
            (stacks the per-sample inputs; the CLIP image preprocessing is a
            pipeline step, configured from the same ``clip`` settings as the head).
        input_key (str): which stacked input feeds the backbone (``'gaussians'``).
        init_cfg (dict | None): weight init of the trainable parts.

    ``forward(inputs, data_samples, mode)``:
        - ``'tensor'``: ``[B', D]`` 3D embeddings (not normalised) of the
          ``B'`` samples that have inputs.
        - ``'loss'``: the head's named losses (``loss_text``, ``loss_img``) and
          the logged ``logit_scale``; the image loss takes the crops' CLIP
          image embeddings from ``inputs['img_embed']`` ``[B', D]``.
        - ``'predict'``: the data samples with ``pred_score`` ``[C]`` over the
          evaluation vocabulary, ``pred_label`` and ``embedding``.

    Unfittable objects (metainfo ``unfittable``, kept in a test set as
    recorded misses; ``gsclip_collate`` batches only the inputs of the others,
    so ``inputs`` rows follow the remaining samples in order): the backbone
    never sees them. ``predict`` gives them ``pred_score`` all NaN,
    ``pred_label`` -1 and no ``embedding`` (``FrozenCLIPHead.predict_unfittable``);
    ``loss`` leaves them out, and a batch with none fittable (training
    normally refetches, so a broken data setup) gives zero losses that still
    backpropagate (a zero gradient to every trainable parameter, so DDP
    ranks stay in step) and a warning.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 data_preprocessor: Optional[dict] = None,
                 input_key: str = 'gaussians',
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)
        self.input_key = input_key

    def extract_feat(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        """``inputs[input_key]`` ``[B, N, C]`` -> ``[B, D]`` 3D embedding."""
        if self.input_key not in inputs:
            raise KeyError(f'GSCLIP needs inputs[{self.input_key!r}]; batch has {sorted(inputs)}')
        if getattr(self.backbone, 'with_size', False):
            if 'norm_scale' not in inputs:
                raise KeyError('the backbone has with_size=True but the batch has no "norm_scale" input '
                               '(put NormalizeGaussians before PackGSCLIPInputs in the pipeline)')
            out = self.backbone(inputs[self.input_key], norm_scale=inputs['norm_scale'])
        else:
            out = self.backbone(inputs[self.input_key])
        if isinstance(out, dict):
            if 'embedding' not in out:
                raise KeyError(f'backbone output lacks "embedding" (keys: {sorted(out)})')
            out = out['embedding']
        return out  # [B, D]


    def loss(self, inputs: Dict[str, torch.Tensor], data_samples: list) -> Dict[str, torch.Tensor]:
        """The head's losses over the fittable samples (see the class docstring)."""
        fitted = [ds for ds in data_samples if not is_unfittable(ds)]
        if not fitted:
            return self._zero_losses(len(data_samples))
        return self.head.loss(self.extract_feat(inputs), inputs.get('img_embed'), fitted)


    def _zero_losses(self, batch_size: int) -> Dict[str, torch.Tensor]:
        """The head's loss keys, all zero, connected to every trainable parameter."""
        print_log(f'GSCLIP: all {batch_size} samples of a training batch are unfittable (metainfo "unfittable"); '
                  f'the step gets zero losses. A training dataset should refetch such objects.',
                  logger='current', level=logging.WARNING)
        params = [p for p in self.parameters() if p.requires_grad]
        zero = sum(p.sum() for p in params) * 0.0 if params else torch.zeros((), requires_grad=True)
        losses = {name: zero.clone() for name, w in (('loss_text', self.head.loss_text_weight),
                                                     ('loss_img', self.head.loss_img_weight)) if w > 0}
        losses['logit_scale'] = self.head.temperature_scale().detach()
        return losses

    # ------------------------------------------------------------- retrieval
    @torch.no_grad()
    def text_to_shape(self, queries: Sequence[str], shape_embeddings: torch.Tensor,
                      topk: int = 5) -> Tuple[torch.Tensor, torch.Tensor]:
        """Text -> 3D retrieval over ``[N, D]`` embeddings (see ``FrozenCLIPHead.text_to_shape``)."""
        return self.head.text_to_shape(queries, shape_embeddings, topk)

    @torch.no_grad()
    def shape_to_image_ranks(self, shape_embeddings: torch.Tensor, img_embed: torch.Tensor) -> torch.Tensor:
        """3D -> image retrieval ranks of row-paired ``[N, D]`` embeddings (``FrozenCLIPHead.shape_to_image_ranks``)."""
        return self.head.shape_to_image_ranks(shape_embeddings, img_embed)
