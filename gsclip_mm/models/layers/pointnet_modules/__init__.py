from .builder import build_fp_modules, build_sa_modules
from .point_fp_module import PointFPModule, three_interpolate_nearest
from .point_sa_module import PointSAModule

__all__ = ['PointFPModule', 'PointSAModule', 'build_fp_modules', 'build_sa_modules', 'three_interpolate_nearest']
