# Ablation (paper Table 2): GS-CLIP without Gaussian-Aware Fusion.
_base_ = ['./pointnet2_gaf_sunrgbd.py']
model = dict(backbone=dict(with_gaf=False))
val_evaluator = dict(method_name='GS-CLIP w/o GAF')
test_evaluator = val_evaluator
