"""Batch assembly for GS-CLIP: stack each per-sample input (Gaussians, CLIP image embeddings, size)."""
from typing import List, Union

import torch
from mmengine.model import BaseDataPreprocessor

from gsclip_mm.registry import MODELS


@MODELS.register_module()
class GSCLIPDataPreprocessor(BaseDataPreprocessor):
    """Collated GS-CLIP batch -> model inputs on the model's device.

    Input ``data`` (``gsclip_collate`` / MMEngine's ``pseudo_collate`` of
    ``PackGSCLIPInputs``): ``dict(inputs=dict(gaussians=[Tensor[N, 14]] * B,
    img_embed=[Tensor[D]] * B, norm_scale=[Tensor[1]] * B),
    data_samples=[GSCLIPDataSample] * B)``; ``img_embed`` and ``norm_scale``
    may be absent. A list of per-sample input dicts is accepted too. Other
    keys of the batch (``gsclip_collate``'s ``misses``) are not passed on.

    Output: ``dict(inputs=dict(gaussians=Tensor[B, N, 14] float32,
    img_embed=Tensor[B, D] float32, ...), data_samples=[B])``: every
    per-sample input stacked along a new first axis, as float32. An empty
    batch (``B = 0``: ``gsclip_collate`` of misses only) gives
    ``dict(inputs={}, data_samples=[])``. Input rows that do not match the
    data samples are an error.

    The CLIP image preprocessing is not here: it is a pipeline step
    (``CLIPImagePreprocess``, open_clip's own transform), and the model
    receives the crops' CLIP image embeddings (``LoadCLIPImageEmbedding``).

    Args:
        non_blocking (bool): see ``BaseDataPreprocessor``.
    """

    def __init__(self, non_blocking: bool = False):
        super().__init__(non_blocking=non_blocking)

    @staticmethod
    def _stack(name: str, items: Union[torch.Tensor, List[torch.Tensor]]) -> torch.Tensor:
        """Stack per-sample tensors of one key to ``[B, ...]`` float32."""
        if isinstance(items, torch.Tensor):
            return items.float()
        shapes = {tuple(t.shape) for t in items}
        if len(shapes) != 1:
            raise ValueError(f'cannot batch {name!r}: per-sample shapes differ {sorted(shapes)}; '
                             f'sample a fixed number of rows first (SampleGaussians num_points)')
        return torch.stack(list(items)).float()

    def forward(self, data: dict, training: bool = False) -> dict:
        """Cast to the device and stack (see the class docstring)."""
        data = self.cast_data({k: data[k] for k in ('inputs', 'data_samples') if k in data})
        inputs, samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, (list, tuple)):  # list of per-sample dicts
            inputs = {k: [d[k] for d in inputs] for k in inputs[0]} if inputs else {}
        if not inputs and samples is not None and len(samples) == 0:
            return dict(inputs={}, data_samples=samples)
        if not isinstance(inputs, dict) or not {'gaussians', 'points', 'depth_views'} & set(inputs):
            raise KeyError(f'batch inputs need "gaussians" (or "points", or "depth_views"); got '
                           f'{sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__}')
        if 'img' in inputs or 'imgs' in inputs:
            raise ValueError('batch inputs carry raw image crops ("img"): the model takes the crops\' CLIP '
                             'image embeddings ("img_embed") instead; put LoadCLIPImageEmbedding before '
                             'PackGSCLIPInputs in the pipeline')
        out = {key: self._stack(key, value) for key, value in inputs.items()}
        rows = {v.shape[0] for v in out.values()}
        if samples is not None and rows != {len(samples)}:
            raise ValueError(f'the batch has {"/".join(map(str, sorted(rows)))} input rows but {len(samples)} data '
                             f'samples; collate with gsclip_collate (collate_fn=dict(type="gsclip_collate"))')
        return dict(inputs=out, data_samples=samples)
