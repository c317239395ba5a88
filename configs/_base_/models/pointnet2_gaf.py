# GS-CLIP: PointNet++ with Gaussian-Aware Fusion, frozen CLIP (paper section 4).
model = dict(
    type='GSCLIP',
    data_preprocessor=dict(type='GSCLIPDataPreprocessor'),  # image size / mean / std from the CLIP
    backbone=dict(
        type='PointNet2GAF',
        in_features=('xyz', 'rgb', 'opacity', 'scale', 'rot'),  # all of the [N, 14] Gaussian
        with_gaf=True,
        embed_dims=512),  # = CLIP embedding width
    head=dict(
        type='FrozenCLIPHead',
        model_name='ViT-B-16',
        pretrained='openai',  # an open_clip tag in the local cache, or a local weights file
        loss_text_weight=0.5,  # paper eq. 10
        loss_img_weight=0.5,
        init_logit_scale=1 / 0.07,
        eval_classes=('bed', 'bookshelf', 'chair', 'desk', 'sofa', 'table', 'toilet', 'bathtub', 'dresser',
                      'night_stand'),
        img_cache_dir='work_dirs/clip_image_cache'))
