from .clip2point import CLIP2PointPretrainer
from .dual_path_adapter import GatedDualPathAdapter, GlobalViewAggregator
from .gsclip import GSCLIP

__all__ = ['GSCLIP', 'CLIP2PointPretrainer', 'GatedDualPathAdapter', 'GlobalViewAggregator']
