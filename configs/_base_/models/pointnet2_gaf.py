# GS-CLIP's model (paper, section 4): PointNet++ with Gaussian-Aware Fusion over the fitted Gaussians, a frozen
# CLIP, 0.5 / 0.5 text / image InfoNCE (eq. 10).
# The frozen CLIP, named once: the head (text tower) and the training pipeline's LoadCLIPImageEmbedding (image
# tower, cached crop embeddings) both take these settings, so the two always agree.
clip = dict(
    model_name='ViT-B-16',  # ours: the paper names CLIP, not the variant
    pretrained='openai')  # an open_clip tag in the local cache, or a local weights file
model = dict(
    type='GSCLIP',
    data_preprocessor=dict(type='GSCLIPDataPreprocessor'),  # stacks Gaussians and image embeddings
    backbone=dict(
        type='PointNet2GAF',
        in_features=('xyz', 'rgb', 'opacity', 'scale', 'rot'),  # all of the [N, 14] Gaussian
        # PointNet++ SSG at its standard sizes (Qi et al. 2017, as CLIP^2 uses it); the paper says only
        # "PointNet++"
        sa_cfg=dict(
            num_points=(512, 128, None),
            radii=(0.2, 0.4, None),
            num_samples=(32, 64, None),
            mlp_channels=((64, 64, 128), (128, 128, 256), (256, 512, 1024))),
        with_gaf=True,  # paper, 4.2
        embed_dims=512),  # = CLIP's embedding width
    head=dict(
        type='FrozenCLIPHead',
        **clip,
        loss=dict(type='InfoNCELoss', symmetric=True, mask_same_group=True),
        loss_text_weight=0.5,  # paper, eq. 10
        loss_img_weight=0.5,  # paper, eq. 10
        init_logit_scale=1 / 0.07,  # CLIP's initial temperature: ours
        eval_classes='sunrgbd37'))  # score all 37 classes; the metrics pick the 10 (Table 1) and the 37
