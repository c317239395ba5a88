# The embedded synthetic SUN RGB-D set (tools/dataset_converters/make_synthetic_sunrgbd.py), in
# mmdetection3d's layout and read by the same dataset class as the real data.
# Lighter than the paper's settings so `make demo` runs in minutes on 2 CPU
# cores: 32x32 fitting target, 30 fitting steps with no opacity reset (a reset
# this late in so short a fit cannot recover: 15.5 vs 22.4 dB PSNR measured),
# at most 256 Gaussians per object (fitted and fed to the encoder).
# docs/results.md says so.
_base_ = ['./sunrgbd_object.py']

data_root = 'data/synthetic_sunrgbd/'
num_points = 256
fit_cfg = dict(num_steps=30, opacity_reset_interval=0, resolution=32, max_gaussians=num_points, lambda_dssim=0.2)
fit_gaussians = dict(type='FitGaussians', cache_dir=data_root + 'gaussians_cache', **fit_cfg)
# CLIP image embeddings: a miss is computed in the data loader and cached (or fill the
# cache ahead with tools/extract_image_embeddings.py).
clip_image_embedding = dict(type='LoadCLIPImageEmbedding', cache_dir=data_root + 'clip_image_embeddings',
                            cache_only=False)

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
    # One loader process overlaps loading with the model's step on 2 cores.
    num_workers=1,
    persistent_workers=True,
    dataset=dict(dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
