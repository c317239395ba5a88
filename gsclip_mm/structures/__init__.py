from .data_sample import NO_PREDICTION, GSCLIPDataSample, top1_labels
from .gaussians import GS_DIM, GS_FEATURES, GS_OPACITY, GS_QUAT, GS_RGB, GS_SCALE, GS_XYZ

__all__ = ['GSCLIPDataSample', 'NO_PREDICTION', 'top1_labels', 'GS_DIM', 'GS_FEATURES', 'GS_OPACITY', 'GS_QUAT',
           'GS_RGB', 'GS_SCALE', 'GS_XYZ']
