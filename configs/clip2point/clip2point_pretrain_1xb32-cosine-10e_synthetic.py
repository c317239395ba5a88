# CLIP2Point's image-depth pre-training on the synthetic set's (image crop, points) pairs (the paper renders
# ShapeNet instead), with CPU-sized settings (ours: 10 epochs, lr 1e-4). The CLIP is the small open_clip ViT
# with random, seeded weights (no network here): the depth encoder starts from an untrained visual tower, so
# results show the pipeline, not CLIP transfer.
#   python tools/train.py configs/clip2point/clip2point_pretrain_1xb32-cosine-10e_synthetic.py
# writes work_dirs/clip2point_pretrain_1xb32-cosine-10e_synthetic/epoch_10.pth, which
# clip2point_zeroshot_synthetic.py loads.
_base_ = ['./_base_/clip2point_pretrain.py', '../_base_/datasets/synthetic_sunrgbd.py',
          '../_base_/default_runtime.py']
from gsclip_mm.utils.clip2point_variants import clip2point_pretrain  # noqa: E402

clip = dict(model_name='GSCLIP-Tiny-64', pretrained=None, clip_seed=0)
model = dict(depth_encoder=dict(clip=clip), head=dict(**clip, templates=('{}', )))
image_size = 64
# The crops' CLIP image embeddings (the frozen image encoder's side), from the same CLIP.
clip_image_embedding = dict(_base_.clip_image_embedding, **clip)
(train_pipeline, test_pipeline, train_dataloader, val_dataloader, test_dataloader, val_evaluator,
 test_evaluator) = clip2point_pretrain(_base_.data, _base_.num_points, _base_.num_views, image_size,
                                       _base_.distance, _base_.pair_distance_jitter, clip_image_embedding,
                                       _base_.val_evaluator)
optim_wrapper = dict(optimizer=dict(lr=1e-4))  # ours: a small random ViT
default_hooks = dict(logger=dict(interval=5))
