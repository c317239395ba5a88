from .builder import build_sa_modules
from .point_sa_module import PointSAModule

__all__ = ['PointSAModule', 'build_sa_modules']
