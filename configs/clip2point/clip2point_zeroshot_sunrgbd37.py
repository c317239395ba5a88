# CLIP2Point zero-shot on SUN RGB-D: PointCLIP (points) with the depth encoder pre-trained by
# clip2point_pretrain_1xb32-cosine-10e_sunrgbd37.py (depth_encoder.* weights, loaded strictly).
#   python tools/test.py configs/clip2point/clip2point_zeroshot_sunrgbd37.py \
#       [--cfg-options model.backbone.init_cfg.checkpoint=<another pre-training checkpoint>]
_base_ = ['./pointclip_points_zeroshot_sunrgbd37.py']
from gsclip_mm.utils.clip2point_variants import clip2point_zeroshot  # noqa: E402

pretrained_depth_encoder = 'work_dirs/clip2point_pretrain_1xb32-cosine-10e_sunrgbd37/epoch_10.pth'
model, test_evaluator = clip2point_zeroshot(pretrained_depth_encoder, _base_.test_evaluator)
