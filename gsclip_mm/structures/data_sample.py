"""The data element that travels with each object from pipeline to metric."""
from typing import Sequence, Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement

# ``pred_label`` of a row that predicts nothing: its scores are not all finite.
NO_PREDICTION = -1


def top1_labels(scores: torch.Tensor) -> torch.Tensor:
    """``[N, C]`` scores -> ``[N]`` long: the first maximal column, ``NO_PREDICTION`` for non-finite rows.

    Written out instead of ``argmax`` because argmax's choice among ties (and
    NaN handling) is not specified on every device.
    """
    assert scores.ndim == 2, f'scores must be [N, C], got {tuple(scores.shape)}'
    n, c = scores.shape
    if c == 0:
        return torch.full((n, ), NO_PREDICTION, dtype=torch.long, device=scores.device)
    idx = torch.arange(c, device=scores.device).expand(n, c)  # [N, C]
    is_max = scores == scores.max(dim=1, keepdim=True).values  # [N, C]
    first = torch.where(is_max, idx, torch.full_like(idx, c)).min(dim=1).values  # [N]
    return torch.where(torch.isfinite(scores).all(dim=1), first, torch.full_like(first, NO_PREDICTION))


class GSCLIPDataSample(BaseDataElement):
    """One object's annotation and prediction.

    Metainfo (set by ``PackGSCLIPInputs``): ``class_name`` (str, the raw
    dataset name, e.g. ``'night_stand'``), ``crop_key`` (str, identifies the
    image crop, readable), ``sample_idx``,
    ``instance_idx``; ``crop_digest`` (str, the crop's content: what the
    cache is keyed by). A test set's recorded miss
    (``SUNRGBDObjectDataset.miss_sample``) is a data sample with the ground
    truth and the reason in its metainfo that never gets a prediction:
    ``gsclip_collate`` keeps it beside the model's batch, for the metric.

    Data fields:
        gt_label (Tensor): ``[1]`` int64, index into the dataset's classes.
        pred_score (Tensor): ``[C]`` float, scores over the evaluation vocabulary.
        pred_label (Tensor): ``[1]`` int64, the first class with the highest
            score (:func:`top1_labels`); ``NO_PREDICTION`` (-1) when the
            scores are not all finite.
        embedding (Tensor): ``[D]`` float, the L2-normalised 3D embedding.
    """

    def set_gt_label(self, value: Union[int, np.integer, torch.Tensor, Sequence[int]]) -> 'GSCLIPDataSample':
        self.gt_label = torch.as_tensor(value, dtype=torch.long).reshape(-1)
        return self

    def set_pred_score(self, value: torch.Tensor) -> 'GSCLIPDataSample':
        assert value.ndim == 1, f'pred_score must be [C], got shape {tuple(value.shape)}'
        self.pred_score = value
        self.pred_label = top1_labels(value[None])  # [1]
        return self
