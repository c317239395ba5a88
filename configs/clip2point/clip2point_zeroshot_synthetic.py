# CLIP2Point zero-shot on the synthetic set: PointCLIP (points) with the depth encoder pre-trained by
# clip2point_pretrain_1xb32-cosine-10e_synthetic.py (its depth_encoder.* weights, loaded strictly by the
# encoder's init_cfg). Untrained tiny CLIP: results show the pipeline, not CLIP transfer.
#   python tools/test.py configs/clip2point/clip2point_zeroshot_synthetic.py \
#       [--cfg-options model.backbone.init_cfg.checkpoint=<another pre-training checkpoint>]
_base_ = ['./pointclip_points_zeroshot_synthetic.py']

pretrained_depth_encoder = 'work_dirs/clip2point_pretrain_1xb32-cosine-10e_synthetic/epoch_10.pth'
model = dict(
    backbone=dict(
        trainable=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_depth_encoder, prefix='depth_encoder.')))
test_evaluator = [dict(m, method_name='CLIP2Point (zero-shot)') for m in _base_.test_evaluator]
