# PointCLIP on the fitted Gaussians (ours: CLIP2Point has no Gaussians): as the points config, but the depth
# maps are the alpha-weighted expected depth of the object's Gaussians (the Gaussian cache of GS-CLIP's configs:
# fit it ahead with tools/fit_gaussians.py), smooth and hole-free.
#   python tools/test.py configs/clip2point/pointclip_gaussians_zeroshot_sunrgbd37.py
_base_ = ['./pointclip_points_zeroshot_sunrgbd37.py']

test_pipeline = [
    dict(type='LoadObjectPoints'),
    dict(type='LoadObjectImage'),
    _base_.fit_gaussians,
    dict(type='SampleGaussians', num_points=_base_.num_points, method='fps'),
    dict(type='RenderGaussianDepthViews', num_views=_base_.num_views, size=224, distance=_base_.distance),
    dict(type='PackGSCLIPInputs', pack_gaussians=False),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_evaluator = [dict(m, method_name='PointCLIP (Gaussians)') for m in _base_.test_evaluator]
