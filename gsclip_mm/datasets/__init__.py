from .sunrgbd_object import SUNRGBDObjectDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['SUNRGBDObjectDataset']
