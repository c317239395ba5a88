# Ablation (ours, not in the paper): GS-CLIP without the object-size feature,
# i.e. only the unit-sphere-normalised shape, as in the paper's pipeline.
_base_ = ['./pointnet2_gaf_synthetic.py']
model = dict(backbone=dict(with_size=False))
val_evaluator = dict(method_name='GS-CLIP w/o size feature')
test_evaluator = val_evaluator
