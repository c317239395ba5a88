# CLIP2Point's image-depth pre-training (paper fig. 2; the authors' models/clip2point.py): a depth encoder
# initialised from CLIP's visual tower and trained; CLIP's image encoder frozen (its crop embeddings come cached,
# LoadCLIPImageEmbedding); NT-Xent (temperature 0.07) between the depth features of two renders at camera
# distances differing by up to +-10 % (intra-modality) and between the image feature and the averaged depth
# feature (cross-modality); the intra term balanced by a learned weight (authors' code). Validation scores
# zero-shot through the head's text embeddings (GS-CLIP's prompts), so checkpoints are kept by it.
clip = dict(model_name='ViT-B-16', pretrained='openai')
model = dict(
    type='CLIP2PointPretrainer',
    data_preprocessor=dict(type='GSCLIPDataPreprocessor'),
    depth_encoder=dict(type='CLIPDepthEncoder', clip=clip, trainable=True, aggregate='mean'),
    head=dict(type='FrozenCLIPHead', **clip, learn_logit_scale=False, eval_classes='sunrgbd37'),
    loss=dict(type='NTXentLoss', temperature=0.07),  # authors' code (lightly's NTXentLoss)
    loss_intra_weight=1.0,
    loss_cross_weight=1.0,
    learn_balance=True,  # authors' code: intra / w^2 + log(w + 1)
    intra_per_view=True,  # paper: a pair is one view at two distances
    cross_with_pair=True)  # authors' code: the image meets the mean of the pair's depth features
num_views = 6
distance = 1.2  # ours (CLIP2Point 1); the pair's distance is distance * U(0.9, 1.1)
pair_distance_jitter = 0.1  # paper / authors' code: +-10 %

# AdamW with a short warm-up then cosine (ours; the authors: LAMB lr 6e-3, weight decay 1e-4, cosine warm
# restarts every 2 epochs, batch 256, 100 epochs on ShapeNet renders). A low lr: it fine-tunes a whole ViT.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=1e-4),
    clip_grad=dict(max_norm=10.0))
max_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=0.0, by_epoch=True, begin=1, end=max_epochs),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32, enable=False)
