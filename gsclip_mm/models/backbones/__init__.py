from .clip_depth_encoder import CLIPDepthEncoder, load_depth_encoder_weights
from .pointnet2_gaf import PointNet2GAF

__all__ = ['PointNet2GAF', 'CLIPDepthEncoder', 'load_depth_encoder_weights']
