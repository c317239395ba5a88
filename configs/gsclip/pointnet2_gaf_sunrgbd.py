# GS-CLIP as in the paper (Table 1 and the last row of Table 2): PointNet++ + GAF on fitted Gaussians, frozen
# CLIP, 0.5 / 0.5 text / image InfoNCE, class-balanced sampling; trained on SUN RGB-D's 37 classes, tested
# zero-shot on its 10 (section 5). Schedule (AdamW 1e-3, cosine, 100 epochs, batch 32): ours.
_base_ = [
    '../_base_/models/pointnet2_gaf.py',
    '../_base_/datasets/sunrgbd_object.py',
    '../_base_/schedules/adamw_cosine.py',
    '../_base_/default_runtime.py',
]
# The training crops' CLIP image embeddings, from the head's CLIP, loaded just before PackGSCLIPInputs.
clip_image_embedding = dict(_base_.clip_image_embedding, **_base_.clip)
train_pipeline = [*_base_.train_pipeline[:-1], clip_image_embedding, _base_.train_pipeline[-1]]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
