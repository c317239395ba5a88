from .clip_loader import (TINY_CLIP_NAME, build_frozen_clip, clip_embed_dims, clip_identity, clip_preprocess_cfg,
                          encode_images, register_embedded_configs, resolve_pretrained)
from .retrieval import cosine_similarity_matrix, retrieval_ranks, topk_retrieval

__all__ = [
    'TINY_CLIP_NAME', 'build_frozen_clip', 'clip_embed_dims', 'clip_identity', 'clip_preprocess_cfg', 'encode_images',
    'register_embedded_configs', 'resolve_pretrained', 'cosine_similarity_matrix', 'retrieval_ranks', 'topk_retrieval'
]
