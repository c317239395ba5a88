from .pointnet2_gaf import PointNet2GAF

__all__ = ['PointNet2GAF']
