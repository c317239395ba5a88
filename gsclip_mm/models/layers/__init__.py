"""Building blocks of the backbones (mmdetection3d's ``models/layers``)."""
from .gaf import GaussianAwareFusion
from .pointnet_modules import PointFPModule, PointSAModule, build_fp_modules, build_sa_modules
from .shared_mlp import SharedMLP

__all__ = ['GaussianAwareFusion', 'PointFPModule', 'PointSAModule', 'SharedMLP', 'build_fp_modules', 'build_sa_modules']
