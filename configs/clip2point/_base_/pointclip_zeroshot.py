# PointCLIP-style zero-shot by multi-view depth maps (training-free): each object's depth views go through the
# frozen CLIP visual tower, the unit view features are averaged (PointCLIP sums view logits: same ranking), and
# the mean is scored by cosine against the same prompt-averaged text embeddings as GS-CLIP (FrozenCLIPHead with
# GS-CLIP's templates and vocabulary), by the same ZeroShotAccuracy on the same split.
# A leaf config adds the data set base and a test pipeline with a depth-view renderer.
clip = dict(model_name='ViT-B-16', pretrained='openai')  # as GS-CLIP's configs (configs/_base_/models)
model = dict(
    type='GSCLIP',
    data_preprocessor=dict(type='GSCLIPDataPreprocessor'),  # stacks depth_views [B, V, 3, S, S]
    input_key='depth_views',
    backbone=dict(type='CLIPDepthEncoder', clip=clip, trainable=False, aggregate='mean'),
    head=dict(type='FrozenCLIPHead', **clip, learn_logit_scale=False, eval_classes='sunrgbd37'))
# No checkpoint: `python tools/test.py CONFIG` (tools/test.py reads this flag and runs init_weights instead).
training_free = True
# Depth rendering (the transforms of gsclip_mm/datasets/transforms/depth_views.py): PointCLIP's six views
# (front, right, back, left, top, bottom); camera distance 1.2 unit-sphere radii (ours; CLIP2Point 1).
num_views = 6
distance = 1.2
