# SUN RGB-D objects from mmdetection3d's converted layout (tools/create_data.py sunrgbd):
#   data/sunrgbd/sunrgbd_infos_{train,val}.pkl, points/*.bin, sunrgbd_trainval/image/*.jpg
# One (text, image crop, Gaussians) triple per object (paper section 5.1).
dataset_type = 'SUNRGBDObjectDataset'
data_root = 'data/sunrgbd/'
class_names = ('bed', 'table', 'sofa', 'chair', 'toilet', 'desk', 'dresser', 'night_stand', 'bookshelf', 'bathtub')
num_points = 1024

# The paper's fitting: 500 steps, opacity reset every 50, SH degree 0. Fit once,
# ahead of training, with tools/fit_gaussians.py CONFIG; training then reads the
# cache (cache_only: a miss means the settings changed, and is an error).
fit_cfg = dict(num_steps=500, opacity_reset_interval=50, resolution=64, max_gaussians=2048, lambda_dssim=0.2)
fit_gaussians = dict(type='FitGaussians', cache_dir=data_root + 'gaussians_cache', cache_only=True, **fit_cfg)
# The crops' CLIP image embeddings (the image loss's targets): computed once, ahead of
# training, by tools/extract_image_embeddings.py CONFIG (cache_only: a miss is an error).
# A GS-CLIP config gives this step the model's `clip` settings and puts it before
# PackGSCLIPInputs in the training pipeline (configs/gsclip/pointnet2_gaf_sunrgbd.py);
# testing needs no image embeddings.
clip_image_embedding = dict(type='LoadCLIPImageEmbedding', cache_dir=data_root + 'clip_image_embeddings',
                            cache_only=True)

train_pipeline = [
    dict(type='LoadObjectPoints'),
    dict(type='LoadObjectImage'),
    fit_gaussians,
    dict(type='SampleGaussians', num_points=num_points, method='fps'),
    dict(type='NormalizeGaussians'),
    dict(type='RandomGaussianAugment', rot_range=(-3.1416, 3.1416), scale_range=(0.8, 1.2), jitter_std=0.01),
    dict(type='PackGSCLIPInputs'),
]
test_pipeline = [
    dict(type='LoadObjectPoints'),
    dict(type='LoadObjectImage'),
    fit_gaussians,
    dict(type='SampleGaussians', num_points=num_points, method='fps'),
    dict(type='NormalizeGaussians'),
    dict(type='PackGSCLIPInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    # pseudo_collate that also batches a test set's unfittable objects (inputs=None, recorded misses)
    collate_fn=dict(type='gsclip_collate'),
    # The paper's data balance: MMEngine's repeat-factor class balancing.
    dataset=dict(
        type='ClassBalancedDataset',
        oversample_thr=0.1,
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='sunrgbd_infos_train.pkl',
            metainfo=dict(classes=class_names),
            min_points=50,
            pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='gsclip_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='sunrgbd_infos_val.pkl',
        metainfo=dict(classes=class_names),
        min_points=50,
        pipeline=test_pipeline,
        test_mode=True))
test_dataloader = val_dataloader
# Zero-shot over the paper's 10 SUN RGB-D classes (Table 1).
val_evaluator = dict(type='ZeroShotAccuracy', topk=(1, 5), method_name='GS-CLIP')
test_evaluator = val_evaluator
