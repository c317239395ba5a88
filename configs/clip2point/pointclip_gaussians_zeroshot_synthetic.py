# PointCLIP on the fitted Gaussians (ours), synthetic set, untrained tiny CLIP (results show the pipeline, not
# CLIP transfer): depth maps splatted from the objects' Gaussians (the synthetic configs' fitting and cache).
#   python tools/test.py configs/clip2point/pointclip_gaussians_zeroshot_synthetic.py
_base_ = ['./pointclip_points_zeroshot_synthetic.py']
from gsclip_mm.utils.clip2point_variants import pointclip_zeroshot  # noqa: E402

test_pipeline, test_dataloader, test_evaluator = pointclip_zeroshot(
    'gaussians', _base_.num_points, _base_.num_views, _base_.image_size, _base_.distance, _base_.test_evaluator,
    _base_.fit_gaussians)
