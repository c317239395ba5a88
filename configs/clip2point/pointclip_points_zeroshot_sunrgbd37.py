# PointCLIP (points), training-free zero-shot on SUN RGB-D under GS-CLIP's protocol (same split, vocabulary,
# prompts and metric): each object's points (the same count GS-CLIP's encoder sees, FPS) rendered from six views
# by CLIP2Point's renderer (nearest point per pixel), through the frozen CLIP ViT-B/16 (224 px).
#   python tools/test.py configs/clip2point/pointclip_points_zeroshot_sunrgbd37.py
_base_ = ['./_base_/pointclip_zeroshot.py', '../_base_/datasets/sunrgbd_object.py', '../_base_/default_runtime.py']

test_pipeline = [
    dict(type='LoadObjectPoints'),
    dict(type='SampleGaussians', key='points', num_points=_base_.num_points, method='fps'),
    dict(type='RenderPointDepthViews', num_views=_base_.num_views, size=224, distance=_base_.distance),
    dict(type='PackGSCLIPInputs', pack_gaussians=False),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_evaluator = [dict(m, method_name='PointCLIP (points)') for m in _base_.test_evaluator]
# Test only (training-free): no training or validation loop.
train_dataloader = None
val_dataloader = None
val_evaluator = None
test_cfg = dict()
