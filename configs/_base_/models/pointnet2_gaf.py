# GS-CLIP: PointNet++ with Gaussian-Aware Fusion, frozen CLIP (paper section 4).
# The frozen CLIP, named once: the head (text tower) and the training pipeline's
# LoadCLIPImageEmbedding (image tower, cached crop embeddings) both take these
# settings (see configs/gsclip/pointnet2_gaf_sunrgbd.py), so the two always agree.
clip = dict(
    model_name='ViT-B-16',
    pretrained='openai')  # an open_clip tag in the local cache, or a local weights file
model = dict(
    type='GSCLIP',
    data_preprocessor=dict(type='GSCLIPDataPreprocessor'),  # stacks Gaussians and image embeddings
    backbone=dict(
        type='PointNet2GAF',
        in_features=('xyz', 'rgb', 'opacity', 'scale', 'rot'),  # all of the [N, 14] Gaussian
        with_gaf=True,
        embed_dims=512),  # = CLIP embedding width
    head=dict(
        type='FrozenCLIPHead',
        **clip,
        loss=dict(type='InfoNCELoss', symmetric=True, mask_same_group=True),
        loss_text_weight=0.5,  # paper eq. 10
        loss_img_weight=0.5,
        init_logit_scale=1 / 0.07,
        eval_classes=('bed', 'bookshelf', 'chair', 'desk', 'sofa', 'table', 'toilet', 'bathtub', 'dresser',
                      'night_stand')))
