"""Point-cloud ops for PointNet++: pure batched PyTorch on any device; mmcv's
compiled CUDA kernels are used where they import and the tensors are on CUDA."""
from ._mmcv import mmcv_ops_available
from .ball_query import ball_query
from .distance import square_distance
from .furthest_point_sample import furthest_point_sample
from .group_points import gather_points, group_points, grouping_operation
from .knn import knn

__all__ = [
    'ball_query', 'furthest_point_sample', 'gather_points', 'group_points', 'grouping_operation', 'knn',
    'mmcv_ops_available', 'square_distance'
]
