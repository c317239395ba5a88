# PointCLIP (points), training-free zero-shot on the synthetic set (`make demo`'s data and protocol). The CLIP is
# the small open_clip ViT with random, seeded, frozen weights (no network here): results show the pipeline, not
# CLIP transfer. Its input is 64 px, so the depth maps are too.
#   python tools/test.py configs/clip2point/pointclip_points_zeroshot_synthetic.py
_base_ = ['./_base_/pointclip_zeroshot.py', '../_base_/datasets/synthetic_sunrgbd.py', '../_base_/default_runtime.py']
from gsclip_mm.utils.clip2point_variants import pointclip_zeroshot  # noqa: E402

clip = dict(model_name='GSCLIP-Tiny-64', pretrained=None, clip_seed=0)
# The head as GS-CLIP's synthetic configs have it (bare class names: see their comment).
model = dict(backbone=dict(clip=clip), head=dict(**clip, templates=('{}', )))
image_size = 64
test_pipeline, test_dataloader, test_evaluator = pointclip_zeroshot(
    'points', _base_.num_points, _base_.num_views, image_size, _base_.distance, _base_.test_evaluator)
# Test only (training-free): no training or validation loop.
train_dataloader = val_dataloader = val_evaluator = None
test_cfg = dict()
