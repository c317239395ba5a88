# Ablation (paper Table 2): GS-CLIP without the image-3D contrastive loss.
_base_ = ['./pointnet2_gaf_synthetic.py']
model = dict(head=dict(loss_text_weight=1.0, loss_img_weight=0.0))
# No image loss: the training batches need no CLIP image embeddings.
train_pipeline = [t for t in _base_.train_pipeline if t['type'] != 'LoadCLIPImageEmbedding']
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_evaluator = dict(method_name='GS-CLIP w/o image loss')
test_evaluator = val_evaluator
