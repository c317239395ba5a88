from .frozen_clip_head import DEFAULT_TEMPLATES, FrozenCLIPHead, info_nce, retrieval_ranks

__all__ = ['FrozenCLIPHead', 'info_nce', 'retrieval_ranks', 'DEFAULT_TEMPLATES']
