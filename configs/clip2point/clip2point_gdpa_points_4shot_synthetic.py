# CLIP2Point's Gated Dual-Path Adapter, 4-shot (points, synthetic set): clip2point_gdpa_points_16shot_synthetic.py
# with k=4 (the same seed: its 4-shot set lies inside the larger ones, KShotDataset).
_base_ = ['./clip2point_gdpa_points_16shot_synthetic.py']

train_dataloader = dict(dataset=dict(k=4))
val_evaluator = [dict(m, method_name='CLIP2Point GDPA (4-shot, points)') for m in _base_.val_evaluator]
test_evaluator = val_evaluator
