from .clip_depth_encoder import CLIPDepthEncoder, load_depth_encoder_weights
from .pointnet2_gaf import PointNet2GAF, PointNet2GAFCls, PointNet2GAFDet3D

__all__ = ['PointNet2GAF', 'PointNet2GAFCls', 'PointNet2GAFDet3D', 'CLIPDepthEncoder', 'load_depth_encoder_weights']
