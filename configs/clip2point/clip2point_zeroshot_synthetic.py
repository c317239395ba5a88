# CLIP2Point zero-shot on the synthetic set: PointCLIP (points) with the depth encoder pre-trained by
# clip2point_pretrain_1xb32-cosine-10e_synthetic.py (its depth_encoder.* weights, loaded strictly by the
# encoder's init_cfg). Untrained tiny CLIP: results show the pipeline, not CLIP transfer.
#   python tools/test.py configs/clip2point/clip2point_zeroshot_synthetic.py \
#       [--cfg-options model.backbone.init_cfg.checkpoint=<another pre-training checkpoint>]
_base_ = ['./pointclip_points_zeroshot_synthetic.py']
from gsclip_mm.utils.clip2point_variants import clip2point_zeroshot  # noqa: E402

pretrained_depth_encoder = 'work_dirs/clip2point_pretrain_1xb32-cosine-10e_synthetic/epoch_10.pth'
model, test_evaluator = clip2point_zeroshot(pretrained_depth_encoder, _base_.test_evaluator)
