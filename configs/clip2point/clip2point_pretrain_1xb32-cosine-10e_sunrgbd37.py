# CLIP2Point's image-depth pre-training on SUN RGB-D's training split of GS-CLIP's protocol: real (image crop,
# points) pairs instead of the paper's ShapeNet renders; the depth encoder starts from CLIP ViT-B/16's visual
# tower. Schedule ours (see _base_/clip2point_pretrain.py).
#   python tools/extract_image_embeddings.py configs/clip2point/clip2point_pretrain_1xb32-cosine-10e_sunrgbd37.py
#   python tools/train.py configs/clip2point/clip2point_pretrain_1xb32-cosine-10e_sunrgbd37.py
_base_ = ['./_base_/clip2point_pretrain.py', '../_base_/datasets/sunrgbd_object.py',
          '../_base_/default_runtime.py']
from gsclip_mm.utils.clip2point_variants import clip2point_pretrain  # noqa: E402

# The crops' CLIP image embeddings (the frozen image encoder's side), from the same CLIP. Pipelines, the plain
# (unbalanced) training split and the evaluators: gsclip_mm/utils/clip2point_variants.py.
clip_image_embedding = dict(_base_.clip_image_embedding, **_base_.clip)
(train_pipeline, test_pipeline, train_dataloader, val_dataloader, test_dataloader, val_evaluator,
 test_evaluator) = clip2point_pretrain(_base_.data, _base_.num_points, _base_.num_views, 224, _base_.distance,
                                       _base_.pair_distance_jitter, clip_image_embedding, _base_.val_evaluator)
