"""The frozen CLIP, below the datasets (image embeddings) and the models (text tower) that both use it."""
from .loader import (TINY_CLIP_NAME, build_frozen_clip, clip_embed_dims, clip_identity, clip_preprocess_cfg,
                     encode_images, register_embedded_configs, resolve_pretrained)

__all__ = [
    'TINY_CLIP_NAME', 'build_frozen_clip', 'clip_embed_dims', 'clip_identity', 'clip_preprocess_cfg', 'encode_images',
    'register_embedded_configs', 'resolve_pretrained'
]
