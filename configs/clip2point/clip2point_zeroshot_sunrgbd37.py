# CLIP2Point zero-shot on SUN RGB-D: PointCLIP (points) with the depth encoder pre-trained by
# clip2point_pretrain_1xb32-cosine-10e_sunrgbd37.py (depth_encoder.* weights, loaded strictly).
#   python tools/test.py configs/clip2point/clip2point_zeroshot_sunrgbd37.py \
#       [--cfg-options model.backbone.init_cfg.checkpoint=<another pre-training checkpoint>]
_base_ = ['./pointclip_points_zeroshot_sunrgbd37.py']

pretrained_depth_encoder = 'work_dirs/clip2point_pretrain_1xb32-cosine-10e_sunrgbd37/epoch_10.pth'
model = dict(
    backbone=dict(
        trainable=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_depth_encoder, prefix='depth_encoder.')))
test_evaluator = [dict(m, method_name='CLIP2Point (zero-shot)') for m in _base_.test_evaluator]
