# CLIP^2-style baseline (paper Table 1): the same PointNet++ on the scanned points'
# positions and colours only (no Gaussian fitting), no GAF, same data balance.
_base_ = ['./pointnet2_gaf_synthetic.py']

model = dict(backbone=dict(in_features=('xyz', 'rgb'), with_gaf=False))
# Raw points, lifted to the [N, 14] layout without fitting (rgb = scan colour).
_points = [
    dict(type='LoadObjectPoints'),
    dict(type='LoadObjectImage'),
    # Sample the scanned points first: the kNN scale init is O(N^2).
    dict(type='SampleGaussians', key='points', num_points={{_base_.num_points}}, method='fps'),
    dict(type='PointsToGaussians'),
    dict(type='NormalizeGaussians'),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=[
    *_points,
    dict(type='RandomGaussianAugment', rot_range=(-3.1416, 3.1416), scale_range=(0.8, 1.2), jitter_std=0.01),
    {{_base_.clip_image_embedding}},  # the crops' CLIP image embeddings (image loss)
    dict(type='PackGSCLIPInputs'),
])))
val_dataloader = dict(dataset=dict(pipeline=[*_points, dict(type='PackGSCLIPInputs')]))
test_dataloader = val_dataloader
val_evaluator = dict(method_name='CLIP^2 (PointNet++)')
test_evaluator = val_evaluator
