"""The data element that travels with each object from pipeline to metric."""
from typing import Sequence, Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement


class GSCLIPDataSample(BaseDataElement):
    """One object's annotation and prediction.

    Metainfo (set by ``PackGSCLIPInputs``): ``class_name`` (str, the raw
    dataset name, e.g. ``'night_stand'``), ``crop_key`` (str, identifies the
    image crop for the on-disk CLIP image-embedding cache), ``sample_idx``,
    ``instance_idx``.

    Data fields:
        gt_label (Tensor): ``[1]`` int64, index into the dataset's classes.
        pred_score (Tensor): ``[C]`` float, scores over the evaluation vocabulary.
        pred_label (Tensor): ``[1]`` int64, argmax of ``pred_score``.
        embedding (Tensor): ``[D]`` float, the L2-normalised 3D embedding.
    """

    def set_gt_label(self, value: Union[int, np.integer, torch.Tensor, Sequence[int]]) -> 'GSCLIPDataSample':
        self.gt_label = torch.as_tensor(value, dtype=torch.long).reshape(-1)
        return self

    def set_pred_score(self, value: torch.Tensor) -> 'GSCLIPDataSample':
        assert value.ndim == 1, f'pred_score must be [C], got shape {tuple(value.shape)}'
        self.pred_score = value
        self.pred_label = value.argmax(dim=0, keepdim=True)
        return self
