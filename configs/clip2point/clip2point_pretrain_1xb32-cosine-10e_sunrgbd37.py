# CLIP2Point's image-depth pre-training on SUN RGB-D's training split of GS-CLIP's protocol: real (image crop,
# points) pairs instead of the paper's ShapeNet renders; the depth encoder starts from CLIP ViT-B/16's visual
# tower. Schedule ours (see _base_/clip2point_pretrain.py).
#   python tools/extract_image_embeddings.py configs/clip2point/clip2point_pretrain_1xb32-cosine-10e_sunrgbd37.py
#   python tools/train.py configs/clip2point/clip2point_pretrain_1xb32-cosine-10e_sunrgbd37.py
_base_ = ['./_base_/clip2point_pretrain.py', '../_base_/datasets/sunrgbd_object.py',
          '../_base_/default_runtime.py']

sample = dict(type='SampleGaussians', key='points', num_points=_base_.num_points, method='fps')
render = dict(type='RenderPointDepthViews', num_views=_base_.num_views, size=224, distance=_base_.distance)
clip_image_embedding = dict(_base_.clip_image_embedding, **_base_.clip)
train_pipeline = [
    dict(type='LoadObjectPoints'),
    dict(type='LoadObjectImage'),
    sample,
    dict(render, pair_distance_jitter=_base_.pair_distance_jitter),
    clip_image_embedding,
    dict(type='PackGSCLIPInputs', pack_gaussians=False),
]
test_pipeline = [dict(type='LoadObjectPoints'), sample, render, dict(type='PackGSCLIPInputs', pack_gaussians=False)]
# No class balancing (CLIP2Point's pre-training has none; a repeated object would be its own NT-Xent negative).
train_dataloader = dict(dataset=dict(_base_.data, split='train', pipeline=train_pipeline, _delete_=True))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_evaluator = [dict(m, method_name='CLIP2Point (pre-training)') for m in _base_.val_evaluator]
test_evaluator = val_evaluator
