# tools/test.py on a GS-CLIP test set with unfittable objects (tests/data/unfittable_components.py).
_base_ = ['../../configs/_base_/default_runtime.py']
custom_imports = dict(imports=['unfittable_components'], allow_failed_imports=False)
model = dict(
    type='GSCLIP',
    backbone=dict(type='_ToyGaussianEncoder'),
    head=dict(type='FrozenCLIPHead', templates=('a point cloud of a {}.', ),
              eval_classes=('bed', 'chair', 'night_stand')))
test_dataloader = dict(
    batch_size=3,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='gsclip_collate'),
    dataset=dict(type='_UnfittableToyObjects'))
test_evaluator = dict(type='ZeroShotAccuracy', topk=(1, 2))
test_cfg = dict()
