"""Set-abstraction and feature-propagation levels of a PointNet++ backbone from per-level config lists."""
from typing import Optional, Sequence

from torch import nn

from .point_fp_module import PointFPModule
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


def build_fp_modules(sa_in_channels: int, sa_out_channels: Sequence[int],
                     fp_channels: Sequence[Sequence[int]]) -> nn.ModuleList:
    """Feature-propagation levels, chained as mmdetection3d's ``PointNet2SASSG`` chains them.

    FP level ``i`` carries the features of set-abstraction level ``L - i``
    (``L = len(sa_out_channels)``; the last level first) back to level
    ``L - i - 1`` (level 0 is the input points, whose skip features are the
    ``sa_in_channels`` input feature columns), so its input width is the
    previous FP level's output width (the last SA level's for ``i = 0``)
    plus that level's.

    Args:
        sa_in_channels (int): per-point input feature width besides xyz (0 for xyz only).
        sa_out_channels (Sequence[int]): output width of each SA level.
        fp_channels (Sequence[Sequence[int]]): MLP widths of each FP level, at
            most one level per SA level (mmdetection3d's ``fp_channels``).
    """
    if len(fp_channels) > len(sa_out_channels):
        raise ValueError(f'fp_channels has {len(fp_channels)} levels, more than the {len(sa_out_channels)} '
                         f'set-abstraction levels it propagates back through')
    skip = [sa_in_channels, *sa_out_channels]  # widths of the input points and of each SA level
    source = skip.pop()
    levels = nn.ModuleList()
    for ch in fp_channels:
        if len(ch) == 0:
            raise ValueError(f'every FP level needs at least one MLP width, got fp_channels={fp_channels}')
        level = PointFPModule([source + skip.pop(), *ch])
        levels.append(level)
        source = level.out_channels
    return levels
