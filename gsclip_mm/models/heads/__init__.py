from .frozen_clip_head import (DEFAULT_TEMPLATES, SUNRGBD_10_CLASSES, FrozenCLIPHead, info_nce,
                               readable_class_name, retrieval_ranks)

__all__ = [
    'FrozenCLIPHead', 'info_nce', 'retrieval_ranks', 'readable_class_name', 'DEFAULT_TEMPLATES', 'SUNRGBD_10_CLASSES'
]
