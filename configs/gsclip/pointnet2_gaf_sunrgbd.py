# GS-CLIP as in the paper: PointNet++ + GAF on fitted Gaussians, frozen ViT-B-16
# CLIP, 0.5/0.5 text/image InfoNCE, class-balanced sampling, SUN RGB-D.
_base_ = [
    '../_base_/models/pointnet2_gaf.py',
    '../_base_/datasets/sunrgbd_object.py',
    '../_base_/schedules/adamw_cosine.py',
    '../_base_/default_runtime.py',
]
