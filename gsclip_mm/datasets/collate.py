"""Batching of packed GS-CLIP samples; a test set's recorded misses travel beside the model's batch.

A test set keeps an object it cannot use (no Gaussians, an unreadable image)
as a *recorded miss*, so the metric still counts it: the sample
``dict(inputs=None, data_samples=<its data sample, the reason in its metainfo>)``
(``SUNRGBDObjectDataset.miss_sample``). :func:`gsclip_collate` batches the
other samples as MMEngine's ``pseudo_collate`` does and moves the misses'
data samples to ``data_batch['misses']``: the data preprocessor passes only
``inputs`` and ``data_samples`` on, so no model's ``forward`` sees a miss.
``GSCLIPBaseModel.val_step`` / ``test_step`` put the misses back among the
predictions, in batch order, for the metric (and ``DumpResults``), which
counts each as wrong.

Registered in MMEngine's root ``FUNCTIONS`` registry (where ``Runner.build_dataloader``
looks up ``collate_fn``; mmdet and mmpretrain register theirs there too), so
configs say ``collate_fn=dict(type='gsclip_collate')``.
"""
from typing import Sequence

from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS


@FUNCTIONS.register_module()
def gsclip_collate(data_batch: Sequence[dict]) -> dict:
    """``pseudo_collate`` of the samples that have inputs; the others (``inputs=None``) go to ``misses``.

    Args:
        data_batch: ``B`` packed samples ``dict(inputs=dict | None, data_samples=GSCLIPDataSample)``.

    Returns:
        ``pseudo_collate`` of the ``B'`` samples with inputs (``dict(inputs={}, data_samples=[])``
        when ``B' = 0``), plus, when ``B' < B``, ``misses``: ``{position in the batch: data sample}``
        of the others, in order. Exactly ``pseudo_collate(data_batch)`` when every sample has inputs.
    """
    misses = {i: s.get('data_samples') for i, s in enumerate(data_batch) if s.get('inputs') is None}
    if not misses:
        return pseudo_collate(data_batch)
    kept = [s for s in data_batch if s.get('inputs') is not None]
    out = pseudo_collate(kept) if kept else dict(inputs={}, data_samples=[])
    out['misses'] = misses
    return out
