# PointCLIP on the fitted Gaussians (ours: CLIP2Point has no Gaussians): as the points config, but the depth
# maps are the alpha-weighted expected depth of the object's Gaussians (the Gaussian cache of GS-CLIP's configs:
# fit it ahead with tools/fit_gaussians.py), smooth and hole-free.
#   python tools/test.py configs/clip2point/pointclip_gaussians_zeroshot_sunrgbd37.py
_base_ = ['./pointclip_points_zeroshot_sunrgbd37.py']
from gsclip_mm.utils.clip2point_variants import pointclip_zeroshot  # noqa: E402

test_pipeline, test_dataloader, test_evaluator = pointclip_zeroshot(
    'gaussians', _base_.num_points, _base_.num_views, 224, _base_.distance, _base_.test_evaluator,
    _base_.fit_gaussians)
