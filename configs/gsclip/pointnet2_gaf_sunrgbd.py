# GS-CLIP as in the paper: PointNet++ + GAF on fitted Gaussians, frozen ViT-B-16
# CLIP, 0.5/0.5 text/image InfoNCE, class-balanced sampling, SUN RGB-D.
_base_ = [
    '../_base_/models/pointnet2_gaf.py',
    '../_base_/datasets/sunrgbd_object.py',
    '../_base_/schedules/adamw_cosine.py',
    '../_base_/default_runtime.py',
]
# The training crops' CLIP image embeddings, from the head's CLIP (the model config's
# `clip` settings), loaded just before PackGSCLIPInputs.
clip_image_embedding = dict(_base_.clip_image_embedding, **_base_.clip)
train_pipeline = [*_base_.train_pipeline[:-1], clip_image_embedding, _base_.train_pipeline[-1]]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
