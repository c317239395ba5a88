# collate registers gsclip_collate in MMEngine's FUNCTIONS (what Runner.build_dataloader reads); any
# import of a gsclip_mm.datasets submodule (e.g. TRANSFORMS' lazy `locations`) runs this file first.
from .collate import gsclip_collate
from .kshot import KShotDataset
from .sunrgbd_object import SUNRGBDObjectDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['SUNRGBDObjectDataset', 'KShotDataset', 'gsclip_collate']
