"""What the package's models share: the batch preprocessor built in our registry, MMEngine's mode switch, and
a test set's recorded misses put back among the predictions."""
from typing import Any, Dict, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel

from gsclip_mm.registry import MODELS


class GSCLIPBaseModel(BaseModel):
    """A ``BaseModel`` whose ``forward`` dispatches ``mode`` to ``extract_feat`` / ``loss`` / ``predict``.

    ``predict`` scores the samples with ``self.head`` (a ``FrozenCLIPHead``: cosine against the evaluation
    classes' text embeddings). A test set's recorded misses (objects it could not use) never reach
    ``forward``: ``gsclip_collate`` keeps them beside the batch (``data_batch['misses']``) and the data
    preprocessor passes only ``inputs`` and ``data_samples`` on, so a batch may be empty (``predict``
    then gives ``[]``; ``loss`` an error: a training set refetches unusable objects instead of keeping
    misses). ``val_step`` / ``test_step`` return the batch's ``B`` data samples in batch order, the
    misses' without a prediction (:func:`with_misses`), so MMEngine's loop, the metric and ``DumpResults``
    see every object.

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
        empty = data_samples is not None and len(data_samples) == 0
        if mode == 'tensor':
            return self.extract_feat(inputs)
        if mode == 'loss':
            if empty:
                raise ValueError(f'{type(self).__name__}: a training batch with no samples (all of its objects '
                                 f'are recorded misses, kept only by a dataset in test mode); train on a dataset '
                                 f'with test_mode=False, which refetches unusable objects')
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return [] if empty else self.predict(inputs, data_samples)
        raise RuntimeError(f'invalid mode "{mode}": {type(self).__name__} supports "tensor", "loss" and "predict"')

    def predict(self, inputs: Dict[str, torch.Tensor], data_samples: list) -> list:
        """The data samples with the head's zero-shot predictions, in order."""
        return self.head.predict(self.extract_feat(inputs), data_samples)

    def val_step(self, data: Union[dict, tuple, list]) -> list:
        """MMEngine's ``val_step``, with the batch's recorded misses put back (:func:`with_misses`)."""
        return with_misses(super().val_step(data), data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        """MMEngine's ``test_step``, with the batch's recorded misses put back (:func:`with_misses`)."""
        return with_misses(super().test_step(data), data)


def with_misses(predictions: Sequence[Any], data_batch: Any) -> list:
    """A batch's ``B`` samples in batch order: the model's ``B'`` predictions, each miss at its position.

    Args:
        predictions: what the model returned for the batch's ``data_samples`` (``B'``, in order).
        data_batch: the collated batch; its ``misses`` (``gsclip_collate``: ``{position: data sample}``), if
            any, are the other ``B - B'``.

    Returns:
        ``B`` items: the predictions, with the misses' data samples (no prediction) put back.
    """
    misses = data_batch.get('misses') if isinstance(data_batch, dict) else None
    if not misses:
        return list(predictions)
    size = len(predictions) + len(misses)
    if any(not 0 <= i < size for i in misses):
        raise ValueError(f'the batch has {len(predictions)} predictions and misses at positions {sorted(misses)}: '
                         f'they do not fill a batch of {size}')
    rest = iter(predictions)
    return [misses[i] if i in misses else next(rest) for i in range(size)]
