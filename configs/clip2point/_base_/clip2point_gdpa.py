# CLIP2Point's Gated Dual-Path Adapter for few-shot classification (paper fig. 3; the authors' models/dpa.py,
# models/adapter.py, fewshot.py): two frozen paths over the same depth views, CLIP's visual tower and the
# CLIP2Point-pre-trained depth encoder, each with a global-view aggregator, fused by a learned gate and classified
# by cosine against the text embeddings; only the aggregators and the gate train (cross-entropy). Which choices
# are the authors' and which ours: gsclip_mm/models/classifiers/dual_path_adapter.py.
# A leaf config adds the data set base, the depth-view pipelines and the k-shot training set (KShotDataset).
clip = dict(model_name='ViT-B-16', pretrained='openai')  # as GS-CLIP's configs (configs/_base_/models)
# The depth path's weights: the checkpoint of configs/clip2point/clip2point_pretrain_*.py (its depth_encoder.*).
# A missing file is an error naming it; None starts the depth path from CLIP's weights (tests only).
pretrained_depth = 'work_dirs/clip2point_pretrain_1xb32-cosine-10e_sunrgbd37/epoch_10.pth'
num_views = 6  # PointCLIP's six views, as the zero-shot configs (the authors' few-shot: 10)
distance = 1.2  # ours, as the zero-shot configs
model = dict(
    type='GatedDualPathAdapter',
    data_preprocessor=dict(type='GSCLIPDataPreprocessor'),  # stacks depth_views [B, V, 3, S, S]
    clip=clip,
    pretrained_depth=pretrained_depth,
    num_views=num_views,
    head=dict(eval_classes='sunrgbd37'),  # the training vocabulary too; the metrics pick the 10 and the 37
    encoder=dict(type='CLIPDepthEncoder'),
    aggregator=dict(dropout=0.075, view_weight_init=0.5),  # authors' code
    gate_init=0.0,  # g = 0.5 at the start: the authors' fixed average
    logit_scale=None)  # CLIP's own inverse temperature (ours; the authors' code: raw cosines)

# k-shot training set: k objects per class of the training split, chosen by a seed (KShotDataset).
kshot = 16
kshot_seed = 0

# AdamW, lr 1e-3, weight decay 1e-4, constant lr, batch 32 (authors' fewshot.py); epochs: ours (CPU-sized).
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))
param_scheduler = []
max_epochs = 20
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32, enable=False)
