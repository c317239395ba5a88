"""GS-CLIP: a 3D encoder trained against a frozen CLIP, used zero-shot."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModel

from gsclip_mm.registry import MODELS


@MODELS.register_module()
class GSCLIP(BaseModel):
    """The GS-CLIP model: backbone (3D encoder) + frozen-CLIP head.

    Args:
        backbone (dict): config of the 3D encoder (e.g. ``PointNet2GAF``); its
            forward takes ``[B, N, C]`` and returns a dict with ``embedding``
            ``[B, D]`` (or the embedding tensor itself).
        head (dict): config of ``FrozenCLIPHead``.
        data_preprocessor (dict | None): default ``GSCLIPDataPreprocessor``;
            its CLIP input size / mean / std follow the head's CLIP unless set.
        input_key (str): which stacked input feeds the backbone (``'gaussians'``).
        init_cfg (dict | None): weight init of the trainable parts.

    ``forward(inputs, data_samples, mode)``:
        - ``'tensor'``: ``[B, D]`` 3D embeddings (not normalised).
        - ``'loss'``: the head's named losses (``loss_text``, ``loss_img``) and
          the logged ``logit_scale``.
        - ``'predict'``: the data samples with ``pred_score`` ``[C]`` over the
          evaluation vocabulary, ``pred_label`` and ``embedding``.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 data_preprocessor: Optional[dict] = None,
                 input_key: str = 'gaussians',
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='GSCLIPDataPreprocessor')
        if isinstance(data_preprocessor, dict):  # build in our scope (BaseModel would use MMEngine's root)
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)
        self.input_key = input_key
        pre = self.data_preprocessor
        if hasattr(pre, 'set_clip_input'):
            pre.set_clip_input(self.head.clip_image_size, self.head.clip_mean, self.head.clip_std)
            # The crop -> tensor recipe decides the cached image embeddings: key the cache on it.
            self.head.img_preprocess_id = pre.image_signature()

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

    def forward(self,
                inputs: Dict[str, torch.Tensor],
                data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Union[torch.Tensor, Dict[str, torch.Tensor], list]:
        """See the class docstring."""
        if mode == 'tensor':
            return self.extract_feat(inputs)
        if mode == 'loss':
            return self.head.loss(self.extract_feat(inputs), inputs.get('imgs'), data_samples)
        if mode == 'predict':
            return self.head.predict(self.extract_feat(inputs), data_samples)
        raise RuntimeError(f'invalid mode "{mode}": GSCLIP supports "tensor", "loss" and "predict"')

    # ------------------------------------------------------------- retrieval
    @torch.no_grad()
    def text_to_shape(self, queries: Sequence[str], shape_embeddings: torch.Tensor,
                      topk: int = 5) -> Tuple[torch.Tensor, torch.Tensor]:
        """Text -> 3D retrieval over ``[N, D]`` embeddings (see ``FrozenCLIPHead.text_to_shape``)."""
        return self.head.text_to_shape(queries, shape_embeddings, topk)

    @torch.no_grad()
    def shape_to_image_ranks(self, shape_embeddings: torch.Tensor, crop_keys: List[str],
                             imgs: Optional[torch.Tensor] = None) -> torch.Tensor:
        """3D -> image retrieval ranks (see ``FrozenCLIPHead.shape_to_image_ranks``)."""
        return self.head.shape_to_image_ranks(shape_embeddings, crop_keys, imgs)
