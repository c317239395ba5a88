# Ablation (ours, not in the paper): GS-CLIP without the object-size feature, i.e. only the unit-sphere-normalised
# shape, as in the paper's pipeline.
_base_ = ['./gsclip_pointnet2-tiny-gaf_1xb32-cosine-20e_synthetic.py']
model = dict(backbone=dict(with_size=False))
val_evaluator = [dict(m, method_name='GS-CLIP w/o size feature') for m in _base_.val_evaluator]
test_evaluator = val_evaluator
