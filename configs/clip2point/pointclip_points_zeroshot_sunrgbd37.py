# PointCLIP (points), training-free zero-shot on SUN RGB-D under GS-CLIP's protocol (same split, vocabulary,
# prompts and metric): each object's points (the same count GS-CLIP's encoder sees, FPS) rendered from six views
# by CLIP2Point's renderer (nearest point per pixel), through the frozen CLIP ViT-B/16 (224 px).
#   python tools/test.py configs/clip2point/pointclip_points_zeroshot_sunrgbd37.py
_base_ = ['./_base_/pointclip_zeroshot.py', '../_base_/datasets/sunrgbd_object.py', '../_base_/default_runtime.py']

from gsclip_mm.utils.clip2point_variants import pointclip_zeroshot  # noqa: E402

test_pipeline, test_dataloader, test_evaluator = pointclip_zeroshot(
    'points', _base_.num_points, _base_.num_views, 224, _base_.distance, _base_.test_evaluator)
# Test only (training-free): no training or validation loop.
train_dataloader = val_dataloader = val_evaluator = None
test_cfg = dict()
