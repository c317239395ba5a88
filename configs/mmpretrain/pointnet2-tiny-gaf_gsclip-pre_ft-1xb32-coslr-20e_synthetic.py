# mmpretrain's own classifier on GS-CLIP's backbone: ImageClassifier + LinearClsHead fine-tuned on the fitted
# Gaussians of the synthetic set, the backbone initialised from a GS-CLIP checkpoint (init_cfg Pretrained with
# prefix='backbone.'). Everything is mmpretrain's (default_scope='mmpretrain': its model, data preprocessor,
# PackInputs, Accuracy, hooks and visualiser), except what is named with the gsclip_mm. prefix: the dataset,
# the point/Gaussian transforms and the backbone.
#
#   python tools/train.py configs/gsclip/gsclip_pointnet2-tiny-gaf_1xb32-cosine-20e_synthetic_no-size.py
#   python tools/train.py configs/mmpretrain/pointnet2-tiny-gaf_gsclip-pre_ft-1xb32-coslr-20e_synthetic.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=<the first run's epoch_20.pth>
#
# The GS-CLIP checkpoint comes from the synthetic config without the object-size feature: mmpretrain's
# ImageClassifier gives its backbone one tensor (the stacked Gaussians), so there is no norm_scale input.
# The backbone below is that config's (tests/test_tools/test_mmpretrain_integration.py checks that every key of
# such a checkpoint loads).
# The data set's settings (data_root, split, fitting, sampling, loaders) and GS-CLIP's schedule, overridden below.
_base_ = ['../_base_/datasets/synthetic_sunrgbd.py', '../_base_/schedules/adamw_cosine.py']
custom_imports = dict(imports=['gsclip_mm'], allow_failed_imports=False)

gsclip_checkpoint = 'work_dirs/gsclip_pointnet2-tiny-gaf_1xb32-cosine-20e_synthetic_no-size/epoch_20.pth'
# The 10 classes of GS-CLIP's Table 1 (the synthetic scenes hold only these), in its column order.
classes = ('bed', 'bookshelf', 'chair', 'desk', 'sofa', 'table', 'toilet', 'bathtub', 'dresser', 'night_stand')

model = dict(
    type='ImageClassifier',
    # Stacks the per-object [N, 14] Gaussian tensors into [B, N, 14]; no mean / std (NormalizeGaussians has
    # already put each object in the unit sphere).
    data_preprocessor=dict(type='ClsDataPreprocessor'),
    backbone=dict(
        type='gsclip_mm.PointNet2GAFCls',  # PointNet2GAF returning a tuple of stages, as mmpretrain's backbones do
        in_features=('xyz', 'rgb', 'opacity', 'scale', 'rot'),
        sa_cfg=dict(  # the CPU-sized PointNet++ of the synthetic GS-CLIP configs
            num_points=(256, 64, None),
            radii=(0.2, 0.4, None),
            num_samples=(16, 16, None),
            mlp_channels=((32, 32, 64), (64, 64, 128), (128, 256, 512))),
        with_gaf=True,
        embed_dims=128,
        with_size=False,
        out_indices=(-1, ),  # the 128-d embedding GS-CLIP aligned with CLIP: what LinearClsHead reads
        init_cfg=dict(type='Pretrained', checkpoint=gsclip_checkpoint, prefix='backbone.')),
    head=dict(
        type='LinearClsHead',
        num_classes=len(classes),
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

# Our pipelines up to the Gaussians (load, fit or read the fit cache, sample, normalise, augment), named in our
# scope; then mmcv's ToTensor (PackInputs would take a 2-D array for a grayscale image) and mmpretrain's PackInputs.
_pack = [
    dict(type='mmcv.ToTensor', keys=['gaussians']),
    dict(type='PackInputs', input_key='gaussians', meta_keys=('class_name', 'sample_idx', 'instance_idx')),
]
train_pipeline = [dict(t, type='gsclip_mm.' + t['type']) for t in _base_.train_pipeline
                  if t['type'] != 'PackGSCLIPInputs'] + _pack
test_pipeline = [dict(t, type='gsclip_mm.' + t['type']) for t in _base_.test_pipeline
                 if t['type'] != 'PackGSCLIPInputs'] + _pack
_data = dict(_base_.data, type='gsclip_mm.SUNRGBDObjectDataset', metainfo=dict(classes=classes))

# The base's loaders (batch, workers, samplers, class balance, splits) over that dataset and these pipelines, with
# mmpretrain's collate (an object that cannot be fitted is not a sample here: a held-out one stops the run at
# collation, a training one is refetched; tools/test.py's zero-shot flow counts them as misses instead).
train_dataloader = dict(collate_fn=dict(type='default_collate', _delete_=True),
                        dataset=dict(dataset=dict(_data, pipeline=train_pipeline)))
val_dataloader = dict(collate_fn=dict(type='default_collate', _delete_=True),
                      dataset=dict(_data, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, 5))]
test_evaluator = val_evaluator

# Fine-tuning: the base's AdamW with the pretrained backbone at a tenth of the head's rate, 20 epochs: one warm-up
# epoch then cosine (as the synthetic GS-CLIP config).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
max_epochs = 20
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=1e-5, by_epoch=True, begin=1, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs)

# mmpretrain's runtime (its configs/_base_/default_runtime.py, written out: MMEngine 0.10.7 resolves
# 'mmpretrain::' bases through pkg_resources, which setuptools >= 81 no longer ships).
default_scope = 'mmpretrain'
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=5),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2, save_best='accuracy/top1', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
