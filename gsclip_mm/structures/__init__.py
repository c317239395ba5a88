from .data_sample import GSCLIPDataSample
from .gaussians import GS_DIM, GS_FEATURES, GS_OPACITY, GS_QUAT, GS_RGB, GS_SCALE, GS_XYZ

__all__ = ['GSCLIPDataSample', 'GS_DIM', 'GS_FEATURES', 'GS_OPACITY', 'GS_QUAT', 'GS_RGB', 'GS_SCALE', 'GS_XYZ']
