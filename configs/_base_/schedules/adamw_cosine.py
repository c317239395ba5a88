# AdamW with linear warm-up then cosine decay, by epoch (ours: the paper states no schedule).
max_epochs = 100
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 5, eta_min=1e-5, by_epoch=True, begin=5, end=max_epochs),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
# tools/train.py --auto-scale-lr scales the lr by (processes x batch per process) / 32: the lr above is
# for one process with batch 32.
auto_scale_lr = dict(base_batch_size=32, enable=False)
