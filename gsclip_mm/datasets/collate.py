"""Batching of packed GS-CLIP samples, including a test set's unfittable objects.

In test mode the dataset keeps an object whose Gaussians could not be fitted
(or whose image / points could not be loaded) as a *recorded miss*: it packs
``dict(inputs=None, data_samples=GSCLIPDataSample(metainfo=dict(...,
unfittable='<reason>')))`` so the metric still counts it. MMEngine's
``pseudo_collate`` cannot batch a ``None`` input; :func:`gsclip_collate` can.

Registered in MMEngine's root ``FUNCTIONS`` registry (where ``Runner.build_dataloader``
looks up ``collate_fn``; mmdet and mmpretrain register theirs there too), so
configs say ``collate_fn=dict(type='gsclip_collate')``.
"""
from typing import Sequence

from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS

from gsclip_mm.structures import is_unfittable


def _describe(sample: dict, i: int) -> str:
    meta = getattr(sample.get('data_samples'), 'metainfo', None) or {}
    ident = ', '.join(f'{k}={meta[k]!r}' for k in ('img_path', 'sample_idx', 'instance_idx') if k in meta)
    return f'sample {i} of the batch' + (f' ({ident})' if ident else '')


@FUNCTIONS.register_module()
def gsclip_collate(data_batch: Sequence[dict]) -> dict:
    """``pseudo_collate``, except that samples with ``inputs=None`` contribute only their data sample.

    Args:
        data_batch: ``B`` packed samples ``dict(inputs=dict | None, data_samples=GSCLIPDataSample)``.

    Returns:
        ``dict(inputs=<pseudo_collate of the B' samples with inputs> (``{}`` when B' = 0),
        data_samples=[all B data samples, in order])``: exactly ``pseudo_collate(data_batch)``
        when every sample has inputs. ``GSCLIPDataPreprocessor`` and ``GSCLIP``
        pair the input rows with the data samples that are not unfittable.

    Raises:
        ValueError: a sample without inputs whose data sample lacks metainfo
            ``unfittable``, or the reverse (the pairing would be wrong).
    """
    for i, sample in enumerate(data_batch):
        if (sample.get('inputs') is None) != is_unfittable(sample.get('data_samples')):
            state = 'has no inputs but no' if sample.get('inputs') is None else 'has inputs and a'
            raise ValueError(f'{_describe(sample, i)} {state} metainfo "unfittable": a test set\'s unfittable '
                             f'object must be packed as dict(inputs=None, data_samples=<metainfo unfittable=reason>)')
    fitted = [s for s in data_batch if s.get('inputs') is not None]
    if len(fitted) == len(data_batch):
        return pseudo_collate(data_batch)
    out = pseudo_collate(fitted) if fitted else dict(inputs={})
    out['data_samples'] = [s['data_samples'] for s in data_batch]
    return out
