# The CLIP^2-style baseline of Table 1: the same PointNet++ on the scanned points' positions and colours (no
# Gaussian fitting), no GAF, the same data balance, retrained on the same data (paper, 5.2).
_base_ = ['./gsclip_pointnet2-tiny-gaf_1xb32-cosine-20e_synthetic.py']

model = dict(backbone=dict(in_features=('xyz', 'rgb'), with_gaf=False))
# Raw points lifted to the [N, 14] layout without fitting (rgb = scan colour): the pipelines with the fitting
# step replaced. Sample the scanned points first: the kNN scale init is O(N^2).
_points = [dict(type='SampleGaussians', key='points', num_points=_base_.num_points, method='fps'),
           dict(type='PointsToGaussians')]
train_pipeline = [s for t in _base_.train_pipeline for s in
                  (_points if t['type'] == 'FitGaussians' else [] if t['type'] == 'SampleGaussians' else [t])]
test_pipeline = [s for t in _base_.test_pipeline for s in
                 (_points if t['type'] == 'FitGaussians' else [] if t['type'] == 'SampleGaussians' else [t])]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_evaluator = [dict(m, method_name='CLIP^2 (PointNet++)') for m in _base_.val_evaluator]
test_evaluator = val_evaluator
