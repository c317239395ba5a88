"""Building blocks of the backbones (mmdetection3d's ``models/layers``)."""
from .gaf import GaussianAwareFusion
from .pointnet_modules import PointSAModule, build_sa_modules
from .shared_mlp import SharedMLP

__all__ = ['GaussianAwareFusion', 'PointSAModule', 'SharedMLP', 'build_sa_modules']
