"""GS-CLIP: a 3D encoder trained against a frozen CLIP, used zero-shot."""
from typing import Dict, Optional

import torch

from gsclip_mm.registry import MODELS
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
        - ``'tensor'``: ``[B, D]`` 3D embeddings (not normalised).
        - ``'loss'``: the head's named losses (``loss_text``, ``loss_img``) and
          the logged ``logit_scale``; the image loss takes the crops' CLIP
          image embeddings from ``inputs['img_embed']`` ``[B, D]``.
        - ``'predict'``: the data samples with ``pred_score`` ``[C]`` over the
          evaluation vocabulary, ``pred_label`` and ``embedding``.

    A test set's recorded misses never reach the model (``GSCLIPBaseModel``).
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
        """The head's losses of the batch (see the class docstring)."""
        return self.head.loss(self.extract_feat(inputs), inputs.get('img_embed'), data_samples)
