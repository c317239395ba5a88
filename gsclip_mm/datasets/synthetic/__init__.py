"""Synthetic indoor scenes written in mmdetection3d's SUN RGB-D layout."""
from .generator import (generate_scene, make_scene, plan_scenes,
                        split_scenes, write_infos, write_scene)
from .objects import BUILDERS, CLASSES

__all__ = [
    'BUILDERS', 'CLASSES', 'generate_scene', 'make_scene', 'plan_scenes',
    'split_scenes', 'write_infos', 'write_scene'
]
