# CLIP2Point's Gated Dual-Path Adapter, 16-shot, on depth maps splatted from the objects' fitted Gaussians (ours),
# synthetic set, untrained tiny CLIP (results show the pipeline, not CLIP transfer). The depth encoder is the one
# pre-trained on point renders (clip2point_pretrain_1xb32-cosine-10e_synthetic.py). Other k:
#   python tools/train.py configs/clip2point/clip2point_gdpa_gaussians_16shot_synthetic.py \
#       --cfg-options train_dataloader.dataset.k=4 work_dir=work_dirs/clip2point_gdpa_gaussians_4shot_synthetic
_base_ = ['./clip2point_gdpa_points_16shot_synthetic.py']
from gsclip_mm.utils.clip2point_variants import depth_view_pipeline  # noqa: E402

# The synthetic set's fitting step as its pipelines have it (the merged `fit_gaussians` variable also carries
# the real set's cache_only=True, which MMEngine's dict merge keeps).
fit_gaussians = [t for t in _base_.test_pipeline if t['type'] == 'FitGaussians'][0]
pipeline = depth_view_pipeline('gaussians', _base_.num_points, _base_.num_views, _base_.image_size, _base_.distance,
                               fit_gaussians)
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=pipeline)))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = dict(dataset=dict(pipeline=pipeline))
val_evaluator = [dict(m, method_name='CLIP2Point GDPA (16-shot, Gaussians)') for m in _base_.val_evaluator]
test_evaluator = val_evaluator
