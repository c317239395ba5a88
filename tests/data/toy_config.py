# A tiny config over the toy components, for the tools' tests.
_base_ = ['../../configs/_base_/default_runtime.py']
custom_imports = dict(imports=['toy_components'], allow_failed_imports=False)
model = dict(type='ToyRegressor')
_data = dict(
    dataset=dict(type='ToyLinearDataset', num=16),
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_size=4,
    num_workers=0)
train_dataloader = _data
val_dataloader = dict(_data, sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='ToyMSE')
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05))
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, save_best=None),
    logger=dict(type='LoggerHook', interval=1))
