# PointCLIP on the fitted Gaussians (ours), synthetic set, untrained tiny CLIP (results show the pipeline, not
# CLIP transfer): depth maps splatted from the objects' Gaussians (the synthetic configs' fitting and cache).
#   python tools/test.py configs/clip2point/pointclip_gaussians_zeroshot_synthetic.py
_base_ = ['./pointclip_points_zeroshot_synthetic.py']

test_pipeline = [
    dict(type='LoadObjectPoints'),
    dict(type='LoadObjectImage'),
    _base_.fit_gaussians,
    dict(type='SampleGaussians', num_points=_base_.num_points, method='fps'),
    dict(type='RenderGaussianDepthViews', num_views=_base_.num_views, size=_base_.image_size,
         distance=_base_.distance),
    dict(type='PackGSCLIPInputs', pack_gaussians=False),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_evaluator = [dict(m, method_name='PointCLIP (Gaussians)') for m in _base_.test_evaluator]
