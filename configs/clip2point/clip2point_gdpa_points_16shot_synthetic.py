# CLIP2Point's Gated Dual-Path Adapter, 16-shot, on depth maps rendered from the objects' points, synthetic set
# (`make demo`'s data and protocol: trained on 16 objects per class of the training split, validated on the val
# split, tested on the test split, ZeroShotAccuracy over the 10 and the 37 classes). The CLIP is the small
# open_clip ViT with random, seeded, frozen weights (no network here): results show the pipeline, not CLIP
# transfer. Needs the pre-trained depth encoder first:
#   python tools/train.py configs/clip2point/clip2point_pretrain_1xb32-cosine-10e_synthetic.py
#   python tools/train.py configs/clip2point/clip2point_gdpa_points_16shot_synthetic.py
#       [--cfg-options model.pretrained_depth=<another pre-training checkpoint> train_dataloader.dataset.seed=1]
# The 1/2/4/8-shot leaves change only k (train_dataloader.dataset.k).
_base_ = ['./_base_/clip2point_gdpa.py', '../_base_/datasets/synthetic_sunrgbd.py', '../_base_/default_runtime.py']
from gsclip_mm.utils.clip2point_variants import depth_view_pipeline  # noqa: E402

clip = dict(model_name='GSCLIP-Tiny-64', pretrained=None, clip_seed=0)
pretrained_depth = 'work_dirs/clip2point_pretrain_1xb32-cosine-10e_synthetic/epoch_10.pth'
# The head as GS-CLIP's synthetic configs have it (bare class names: see their comment).
model = dict(clip=clip, pretrained_depth=pretrained_depth, head=dict(templates=('{}', )))
image_size = 64  # the tiny CLIP's input
pipeline = depth_view_pipeline('points', _base_.num_points, _base_.num_views, image_size, _base_.distance)
# No augmentation and no class balancing (a k-shot set is balanced by construction): ours.
train_dataloader = dict(
    dataset=dict(type='KShotDataset', k=_base_.kshot, seed=_base_.kshot_seed,
                 dataset=dict(_base_.data, split='train', pipeline=pipeline), _delete_=True))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = dict(dataset=dict(pipeline=pipeline))
val_evaluator = [dict(m, method_name='CLIP2Point GDPA (16-shot, points)') for m in _base_.val_evaluator]
test_evaluator = val_evaluator
default_hooks = dict(logger=dict(interval=5))
