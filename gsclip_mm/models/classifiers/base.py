"""What the package's models share: the batch preprocessor built in our registry, and MMEngine's mode switch."""
from typing import Dict, Optional, Union

import torch
from mmengine.model import BaseModel

from gsclip_mm.registry import MODELS
from gsclip_mm.structures import is_unfittable


class GSCLIPBaseModel(BaseModel):
    """A ``BaseModel`` whose ``forward`` dispatches ``mode`` to ``extract_feat`` / ``loss`` / ``predict``.

    ``predict`` scores the fittable samples with ``self.head`` (a ``FrozenCLIPHead``: cosine against the
    evaluation classes' text embeddings) and gives the unfittable ones (metainfo ``unfittable``, test-set
    misses with no inputs) no prediction.

    Args:
        data_preprocessor (dict | None): default ``GSCLIPDataPreprocessor``; a dict is built in our
            registry (``BaseModel`` would look it up in MMEngine's root registry).
        init_cfg (dict | None): weight init of the trainable parts.
    """

    def __init__(self, data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='GSCLIPDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)

    def forward(self,
                inputs: Dict[str, torch.Tensor],
                data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Union[torch.Tensor, Dict[str, torch.Tensor], list]:
        """``'tensor'``: :meth:`extract_feat`; ``'loss'``: :meth:`loss`; ``'predict'``: :meth:`predict`."""
        if mode == 'tensor':
            return self.extract_feat(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'invalid mode "{mode}": {type(self).__name__} supports "tensor", "loss" and "predict"')

    def predict(self, inputs: Dict[str, torch.Tensor], data_samples: list) -> list:
        """Predictions for every sample, in order; unfittable ones predict nothing."""
        fitted = [ds for ds in data_samples if not is_unfittable(ds)]
        if fitted:
            self.head.predict(self.extract_feat(inputs), fitted)
        self.head.predict_unfittable([ds for ds in data_samples if is_unfittable(ds)])
        return list(data_samples)
