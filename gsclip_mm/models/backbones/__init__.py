from .pointnet2 import PointSAModule, SharedMLP
from .pointnet2_gaf import GaussianAwareFusion, PointNet2GAF

__all__ = ['PointNet2GAF', 'GaussianAwareFusion', 'PointSAModule', 'SharedMLP']

