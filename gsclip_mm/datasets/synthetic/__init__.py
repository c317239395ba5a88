"""Synthetic indoor scenes written in SUN RGB-D's extraction layout (the SUN RGB-D converter's input)."""
from .generator import generate_scene, make_scene, plan_scenes, scene_paths, write_scene
from .objects import BUILDERS, CLASSES, EXTRA_CLASSES, KINDS, RAW_NAMES, TEST_CLASSES

__all__ = [
    'BUILDERS', 'CLASSES', 'EXTRA_CLASSES', 'KINDS', 'RAW_NAMES', 'TEST_CLASSES', 'generate_scene', 'make_scene',
    'plan_scenes', 'scene_paths', 'write_scene'
]
