# Ablation (paper Table 2): GS-CLIP without the image-3D contrastive loss.
_base_ = ['./pointnet2_gaf_synthetic.py']
model = dict(head=dict(loss_text_weight=1.0, loss_img_weight=0.0))
val_evaluator = dict(method_name='GS-CLIP w/o image loss')
test_evaluator = val_evaluator
