# Ablation (paper Table 2): GS-CLIP without the data-balance mechanism (the
# plain dataset instead of MMEngine's ClassBalancedDataset wrapper).
_base_ = ['./pointnet2_gaf_synthetic.py']
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='SUNRGBDObjectDataset',
        data_root={{_base_.data_root}},
        ann_file='sunrgbd_infos_train.pkl',
        metainfo=dict(classes={{_base_.class_names}}),
        min_points=50,
        pipeline={{_base_.train_pipeline}}))
val_evaluator = dict(method_name='GS-CLIP w/o data balance')
test_evaluator = val_evaluator
