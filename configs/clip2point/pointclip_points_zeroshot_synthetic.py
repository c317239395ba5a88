# PointCLIP (points), training-free zero-shot on the synthetic set (`make demo`'s data and protocol). The CLIP is
# the small open_clip ViT with random, seeded, frozen weights (no network here): results show the pipeline, not
# CLIP transfer. Its input is 64 px, so the depth maps are too.
#   python tools/test.py configs/clip2point/pointclip_points_zeroshot_synthetic.py
_base_ = ['./_base_/pointclip_zeroshot.py', '../_base_/datasets/synthetic_sunrgbd.py', '../_base_/default_runtime.py']

clip = dict(model_name='GSCLIP-Tiny-64', pretrained=None, clip_seed=0)
# The head as GS-CLIP's synthetic configs have it (bare class names: see their comment).
model = dict(backbone=dict(clip=clip), head=dict(**clip, templates=('{}', )))
image_size = 64
test_pipeline = [
    dict(type='LoadObjectPoints'),
    dict(type='SampleGaussians', key='points', num_points=_base_.num_points, method='fps'),
    dict(type='RenderPointDepthViews', num_views=_base_.num_views, size=image_size, distance=_base_.distance),
    dict(type='PackGSCLIPInputs', pack_gaussians=False),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_evaluator = [dict(m, method_name='PointCLIP (points)') for m in _base_.test_evaluator]
# Test only (training-free): no training or validation loop.
train_dataloader = None
val_dataloader = None
val_evaluator = None
test_cfg = dict()
