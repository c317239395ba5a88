"""Dataset converters: raw dataset layouts -> the infos layout the datasets read (no mmdetection3d needed)."""
from .sunrgbd import (DEFAULT_NUM_POINTS, LabelLineError, SceneSkip, convert, convert_scene, depth2img_matrix,
                      find_scenes, format_report, load_depth_points, parse_calib, parse_label_file, parse_label_line,
                      subsample_points)
from .sunrgbd37 import DEFAULT_MAPPING_FILE, NameMatch, SUNRGBD37Mapping, normalize_name, singular_candidates

__all__ = [
    'DEFAULT_NUM_POINTS', 'LabelLineError', 'SceneSkip', 'convert', 'convert_scene', 'depth2img_matrix',
    'find_scenes', 'format_report', 'load_depth_points', 'parse_calib', 'parse_label_file', 'parse_label_line',
    'subsample_points', 'DEFAULT_MAPPING_FILE', 'NameMatch', 'SUNRGBD37Mapping', 'normalize_name',
    'singular_candidates'
]
