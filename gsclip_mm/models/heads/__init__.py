from .frozen_clip_head import DEFAULT_TEMPLATES, FrozenCLIPHead

__all__ = ['FrozenCLIPHead', 'DEFAULT_TEMPLATES']
