"""A toy model and dataset to exercise the tools' CLI quickly (not GS-CLIP).

Imported by ``tests/data/toy_config.py`` through ``custom_imports``; the tests
put ``tests/data`` on PYTHONPATH.
"""
import torch
import torch.nn as nn
from mmengine.dataset import BaseDataset
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel

from gsclip_mm.registry import DATASETS, METRICS, MODELS


@MODELS.register_module()
class ToyRegressor(BaseModel):
    """y = w.x + b, trained to fit a fixed linear target."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs)  # [B, 2]
        y = self.linear(x)[:, 0]  # [B]
        if mode == 'tensor':
            return y
        target = torch.stack(data_samples)  # [B]
        if mode == 'loss':
            return dict(loss=(y - target).pow(2).mean())
        if mode == 'predict':
            return [dict(pred=p.detach(), target=t) for p, t in zip(y, target)]
        raise RuntimeError(f'invalid mode "{mode}"')


@DATASETS.register_module()
class ToyLinearDataset(BaseDataset):
    """``num`` samples of x ~ N(0, 1)^2 with target 2*x0 - x1 + 0.5."""

    def __init__(self, num=16, **kwargs):
        self.num = num
        super().__init__(serialize_data=False, **kwargs)

    def load_data_list(self):
        g = torch.Generator().manual_seed(0)
        xs = torch.randn(self.num, 2, generator=g)
        return [dict(inputs=x, data_samples=2 * x[0] - x[1] + 0.5) for x in xs]

    def get_data_info(self, idx):
        info = dict(self.data_list[idx])
        return info

    def __getitem__(self, idx):
        info = self.get_data_info(idx)
        return dict(inputs=info['inputs'], data_samples=info['data_samples'])


@METRICS.register_module()
class ToyMSE(BaseMetric):
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        self.results.extend(float((d['pred'] - d['target'])**2) for d in data_samples)

    def compute_metrics(self, results):
        return dict(mse=sum(results) / len(results))
