"""PointNet's shared MLP in channels-last layout.

Features are kept as ``[..., C]`` (e.g. ``[B, M, K, C]`` inside a
set-abstraction level) so that every layer is one matrix multiply
(``nn.Linear``) over all points, the fastest layout on the CPU.
"""
from typing import Sequence

import torch
from torch import nn


class SharedMLP(nn.Module):
    """PointNet's shared MLP: ``Linear -> BatchNorm -> ReLU`` per layer, on the last axis.

    Args:
        in_channels (int): input width.
        channels (Sequence[int]): output width of each layer.
    """

    def __init__(self, in_channels: int, channels: Sequence[int]):
        super().__init__()
        if len(channels) == 0:
            raise ValueError('SharedMLP needs at least one layer width')
        layers = []
        for c in channels:
            layers += [nn.Linear(in_channels, c, bias=False), nn.BatchNorm1d(c), nn.ReLU(inplace=True)]
            in_channels = c
        self.layers = nn.ModuleList(layers)
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., C_in] -> [..., C_out]``; BatchNorm statistics over all leading axes."""
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])  # [P, C_in]
        for layer in self.layers:
            x = layer(x)
        return x.view(*lead, self.out_channels)
