"""A GS-CLIP test set with unfittable objects, for tools/test.py's tests.

``_UnfittableToyObjects`` returns packed samples (as the dataset's pipeline
would) for 7 objects, 4 of them unfittable (``inputs=None`` and metainfo
``unfittable``, as ``SUNRGBDObjectDataset.miss_sample`` packs them), so that
with batch size 3 one batch is entirely unfittable (the model sees an empty batch).
"""
import torch
import torch.nn as nn
from mmengine.dataset import BaseDataset

from gsclip_mm.registry import DATASETS, MODELS
from gsclip_mm.structures import GSCLIPDataSample

CLASSES = ('bed', 'chair', 'night_stand')
UNFITTABLE = {1: 'no points in box', 3: 'no points in box', 4: 'image not found', 5: 'no points in box'}


@DATASETS.register_module()
class _UnfittableToyObjects(BaseDataset):
    METAINFO = dict(classes=CLASSES)

    def __init__(self, num=7, **kwargs):
        self.num = num
        super().__init__(serialize_data=False, **kwargs)

    def load_data_list(self):
        return [dict(sample_idx=i, label=i % len(CLASSES)) for i in range(self.num)]

    def __getitem__(self, idx):
        info = self.get_data_info(idx)
        meta = dict(class_name=CLASSES[info['label']], sample_idx=idx, instance_idx=0, img_path=f'/d/{idx}.jpg')
        if idx in UNFITTABLE:
            meta['unfittable'] = UNFITTABLE[idx]
        ds = GSCLIPDataSample(metainfo=meta).set_gt_label(info['label'])
        if idx in UNFITTABLE:
            return dict(inputs=None, data_samples=ds)
        g = torch.Generator().manual_seed(idx)
        return dict(inputs=dict(gaussians=torch.randn(16, 14, generator=g)), data_samples=ds)


@MODELS.register_module()
class _ToyGaussianEncoder(nn.Module):
    """Per-Gaussian linear map, max-pooled: ``[B, N, 14] -> dict(embedding=[B, 128])``."""

    def __init__(self, embed_dims=128):
        super().__init__()
        self.proj = nn.Linear(14, embed_dims)

    def forward(self, x):
        return dict(embedding=self.proj(x).max(dim=1).values)
