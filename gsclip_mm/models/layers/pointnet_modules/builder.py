"""Set-abstraction levels of a PointNet++ backbone from per-level config lists."""
from typing import Optional, Sequence

from torch import nn

from .point_sa_module import PointSAModule


def build_sa_modules(in_channels: int, num_points: Sequence[Optional[int]], radii: Sequence,
                     num_samples: Sequence, mlp_channels: Sequence) -> nn.ModuleList:
    """Set-abstraction levels from per-level lists.

    A level is multi-scale (MSG) when its radius is a list: then its
    ``num_samples`` entry is a list of the same length and its
    ``mlp_channels`` entry a list of width lists. A level with
    ``num_point=None`` groups all points (its radius and sample entries are
    ignored; give None). Each level's input width is the previous level's
    output width.
    """
    if not len(num_points) == len(radii) == len(num_samples) == len(mlp_channels) >= 1:
        raise ValueError('sa_cfg lists must have one entry per level and the same length, got '
                         f'num_points={num_points}, radii={radii}, num_samples={num_samples}, '
                         f'mlp_channels={mlp_channels}')
    levels = nn.ModuleList()
    for n, r, k, ch in zip(num_points, radii, num_samples, mlp_channels):
        msg = isinstance(r, (list, tuple))
        level = PointSAModule(in_channels, n, list(r) if msg else [r], list(k) if msg else [k],
                              list(ch) if msg else [ch])
        levels.append(level)
        in_channels = level.out_channels
    return levels
