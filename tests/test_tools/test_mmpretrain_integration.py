"""GS-CLIP's backbone inside mmpretrain (1.2.0, installed by `make test`): the issue's ImageClassifier +
LinearClsHead config, and configs/mmpretrain/'s fine-tuning config run by MMEngine's Runner from a GS-CLIP
checkpoint (init_cfg Pretrained, prefix 'backbone.'): every backbone weight is the checkpoint's, not a random
init, and the loss falls."""
import os.path as osp
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.hooks import Hook
from mmengine.registry import DATASETS, DefaultScope, init_default_scope
from mmengine.runner import Runner

import gsclip_mm  # noqa: F401  (registries; allow-lists MMEngine's checkpoint types)
from gsclip_mm.registry import MODELS as GSCLIP_MODELS
from gsclip_mm.structures import GS_DIM, GS_OPACITY, GS_QUAT, GS_RGB, GS_SCALE, GS_XYZ

mmpretrain = pytest.importorskip('mmpretrain')  # a test dependency (requirements.txt); kept optional for users
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS  # noqa: E402
from mmpretrain.registry import TRANSFORMS as MMPRETRAIN_TRANSFORMS  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'mmpretrain', 'pointnet2-tiny-gaf_gsclip-pre_ft-1xb32-coslr-20e_synthetic.py')
# The GS-CLIP config whose checkpoints CONFIG starts from.
GSCLIP_CONFIG = osp.join(ROOT, 'configs', 'gsclip', 'gsclip_pointnet2-tiny-gaf_1xb32-cosine-20e_synthetic_no-size.py')


@pytest.fixture(autouse=True)
def restore_default_scope():
    """These tests set mmpretrain's default scope (as its configs and Runner do); the suite's other tests build in
    none, so the scope is put back after each."""
    saved = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


def test_issue_config_trains_image_classifier_with_linear_cls_head(tmp_path):
    """The issue's model (it failed in LinearClsHead.pre_logits: feats[-1] on a dict) with the mmpretrain adapter
    PointNet2GAFCls: the classifier's loss is cross-entropy of the head's linear layer on the backbone's
    embedding."""
    cfg_file = tmp_path / 'other_project.py'
    cfg_file.write_text(textwrap.dedent("""
        default_scope = 'mmpretrain'
        custom_imports = dict(imports=['gsclip_mm'], allow_failed_imports=False)
        model = dict(type='ImageClassifier',
                     backbone=dict(type='gsclip_mm.PointNet2GAFCls', in_channels=6, with_gaf=False,
                                   sa_cfg=dict(num_points=(32, 8, None), num_samples=(8, 8, None))),
                     head=dict(type='LinearClsHead', num_classes=10, in_channels=512))
        """))
    cfg = Config.fromfile(str(cfg_file))
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MMPRETRAIN_MODELS.build(cfg.model)
    model.init_weights()
    points = torch.rand(4, 64, 6)  # [B, N, xyz + rgb]
    labels = torch.tensor([3, 1, 4, 1])
    samples = [mmpretrain.structures.DataSample().set_gt_label(int(y)) for y in labels]
    data = model.data_preprocessor(dict(inputs=list(points), data_samples=samples), True)
    torch.manual_seed(1)
    loss = model(**data, mode='loss')['loss']
    torch.manual_seed(1)
    (embedding, ) = model.backbone(points)  # [B, 512]
    torch.testing.assert_close(loss, F.cross_entropy(model.head.fc(embedding), labels))


def test_config_builds_in_mmpretrain_scope_with_the_gsclip_backbone():
    """The dataset and every transform resolve from mmpretrain's scope; the backbone is the GS-CLIP config's."""
    cfg = Config.fromfile(CONFIG)
    assert cfg.default_scope == 'mmpretrain' and cfg.model.type == 'ImageClassifier'
    assert cfg.model.head.type == 'LinearClsHead' and cfg.model.backbone.init_cfg.prefix == 'backbone.'
    init_default_scope('mmpretrain')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[loader].dataset
        ds = ds.get('dataset', ds)
        assert DATASETS.get(ds.type).__name__ == 'SUNRGBDObjectDataset'
        assert [type(MMPRETRAIN_TRANSFORMS.build(t)).__name__ for t in ds.pipeline][-2:] == ['ToTensor', 'PackInputs']
    # The same network as the GS-CLIP config's backbone: the same parameters and buffers, the same inputs.
    with DefaultScope.overwrite_default_scope('gsclip_mm'):
        theirs = GSCLIP_MODELS.build(Config.fromfile(GSCLIP_CONFIG).model.backbone)
    ours = MMPRETRAIN_MODELS.build(dict(cfg.model.backbone, init_cfg=None))
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in theirs.state_dict().items()]
    assert (type(ours).__name__, type(theirs).__name__) == ('PointNet2GAFCls', 'PointNet2GAF')
    assert (ours.feature_columns, ours.with_size, ours.out_indices) == (theirs.feature_columns, False, (3, ))


class _GaussianObjects(BaseDataset):
    """16 objects of 4 classes, 256 Gaussians each: ellipsoids whose axes and colour depend on the class."""

    METAINFO = dict(classes=tuple(f'class{i}' for i in range(10)))

    def __init__(self, **kwargs):
        super().__init__(ann_file='', serialize_data=False, **kwargs)

    def load_data_list(self):
        rng = np.random.default_rng(0)
        out = []
        for i in range(16):
            label = i % 4
            g = np.zeros((256, GS_DIM), np.float32)  # [N, 14]
            d = rng.normal(size=(256, 3))
            g[:, GS_XYZ] = d / np.linalg.norm(d, axis=1, keepdims=True) * [1.0, 0.3 + 0.4 * label, 0.5]
            g[:, GS_RGB] = np.clip(rng.normal([0.2 * label, 0.5, 0.8 - 0.2 * label], 0.05, (256, 3)), 0, 1)
            g[:, GS_OPACITY] = rng.uniform(0.5, 1.0, (256, 1))
            g[:, GS_SCALE] = rng.uniform(0.01, 0.05, (256, 3))
            g[:, GS_QUAT] = [1.0, 0.0, 0.0, 0.0]
            out.append(dict(gaussians=g, gt_label=label, sample_idx=i, instance_idx=0, class_name=f'class{label}'))
        return out


class _RecordBackbone(Hook):
    """The backbone's state after the runner's weight init, before the first step."""

    def before_train(self, runner):
        self.state = {k: v.clone() for k, v in runner.model.backbone.state_dict().items()}


def _gsclip_checkpoint(path):
    """A checkpoint of the GS-CLIP config's model, as tools/train.py saves one: its BatchNorm statistics moved
    by two training-mode forwards, so they are not an init's either."""
    torch.manual_seed(7)
    with DefaultScope.overwrite_default_scope('gsclip_mm'):
        model = GSCLIP_MODELS.build(Config.fromfile(GSCLIP_CONFIG).model).train()
    with torch.no_grad():
        for _ in range(2):
            model(dict(gaussians=torch.rand(4, 256, GS_DIM)), mode='tensor')
    state = model.state_dict()
    torch.save(dict(meta=dict(epoch=20), state_dict=state), path)
    return state


def test_finetune_config_loads_a_gsclip_checkpoint_and_trains(tmp_path):
    ckpt = tmp_path / 'gsclip_epoch_20.pth'
    gsclip_state = _gsclip_checkpoint(ckpt)
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.init_cfg.checkpoint = str(ckpt)
    DATASETS.register_module(name='GSCLIPTestGaussianObjects', module=_GaussianObjects, force=True)
    # The config's own packing (and normalisation) after the hand-made Gaussians.
    pipeline = cfg.test_dataloader.dataset.pipeline
    start = [t['type'] for t in pipeline].index('gsclip_mm.NormalizeGaussians')
    loader = dict(batch_size=16, num_workers=0, persistent_workers=False, collate_fn=dict(type='default_collate'),
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  dataset=dict(type='GSCLIPTestGaussianObjects', pipeline=pipeline[start:]))
    cfg.train_dataloader = cfg.val_dataloader = loader  # replaced, not merged
    cfg.merge_from_dict(dict(
        work_dir=str(tmp_path / 'work'), train_cfg=dict(max_epochs=8, val_interval=8), param_scheduler=[],
        default_hooks=dict(logger=dict(interval=1), checkpoint=dict(interval=100, save_best=None))))
    runner = Runner.from_cfg(cfg)
    record = _RecordBackbone()
    runner.register_hook(record)
    runner.train()

    # Every backbone tensor (weights and BatchNorm statistics) is the checkpoint's 'backbone.' entry.
    expected = {k[len('backbone.'):]: v for k, v in gsclip_state.items() if k.startswith('backbone.')}
    assert sorted(record.state) == sorted(expected)
    unequal = [k for k, v in record.state.items() if not torch.equal(v, expected[k])]
    assert not unequal, unequal
    # ... which a random init is not.
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    fresh = MMPRETRAIN_MODELS.build(dict(cfg.model, backbone=dict(cfg.model.backbone, init_cfg=None)))
    fresh.init_weights()
    for key in ('sa_modules.0.mlps.0.layers.0.weight', 'gaf.transformer.layers.0.linear1.weight', 'head.4.weight'):
        assert not torch.allclose(fresh.backbone.state_dict()[key], expected[key]), key

    # The same 16 objects every step (one batch): the loss falls.
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 8
    # Measured: 2.287 falling by about 0.1 every step to 1.586 (ratio 0.69); round-off moves these by ~1e-6.
    assert (np.diff(losses) < 0).all() and losses[-1] < 0.8 * losses[0], losses
    # The predict path ran through mmpretrain's Accuracy on all 16 objects (a multiple of 100 / 16).
    top1 = runner.message_hub.get_scalar('val/accuracy/top1').current()
    assert 0 <= top1 <= 100 and (top1 / 6.25) == round(top1 / 6.25)


# ------------------------------------------------------------------------------------ confusion matrix
VOCAB = ('bed', 'chair', 'sofa', 'table', 'lamp')  # the head's vocabulary; 'lamp' is outside the shown classes
SHOWN = ['bed', 'chair', 'sofa', 'table']
# (true class, scores over VOCAB, unfittable reason) -> the prediction under ZeroShotAccuracy's rules
OBJECTS = [
    ('bed', [0.9, 0.1, 0.0, 0.0, 0.0], None),  # bed
    ('bed', [0.5, 0.5, 0.0, 0.0, 0.0], None),  # tie: the first class, bed
    ('bed', [0.1, 0.2, 0.8, 0.0, 0.0], None),  # sofa
    ('chair', [0.1, 0.3, 0.0, 0.0, 0.9], None),  # lamp wins overall but does not compete: chair
    ('chair', [0.0, 0.1, 0.0, 0.7, 0.0], None),  # table
    ('sofa', [0.0, 0.0, float('nan'), 0.9, 0.0], None),  # non-finite: no prediction
    ('sofa', [0.0, 0.0, 0.0, 0.0, 0.0], 'FitInputError: no point projects into the bbox'),  # no prediction
    ('table', [0.0, 0.0, 0.0, 0.6, 0.0], None),  # table
    ('lamp', [0.0, 0.0, 0.0, 0.0, 0.9], None),  # not a shown class: left out
]
# rows: bed, chair, sofa, table; columns: bed, chair, sofa, table, (no prediction)
EXPECTED = [[2, 0, 1, 0, 0], [0, 1, 0, 1, 0], [0, 0, 0, 0, 2], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]


def _dump_predictions(path):
    """GS-CLIP data samples dumped by MMEngine's DumpResults through an Evaluator, as tools/test.py --out does."""
    from mmengine.evaluator import DumpResults, Evaluator

    from gsclip_mm.structures import GSCLIPDataSample
    samples = []
    for i, (name, scores, unfittable) in enumerate(OBJECTS):
        meta = dict(class_name=name, sample_idx=i, score_classes=VOCAB, clip_untrained=True)
        if unfittable:
            meta['unfittable'] = unfittable
        samples.append(GSCLIPDataSample(metainfo=meta).set_pred_score(torch.tensor(scores)))
    evaluator = Evaluator([DumpResults(out_file_path=str(path))])
    evaluator.process(data_samples=samples)
    evaluator.evaluate(len(samples))


def _confusion_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'confusion_matrix_tool', osp.join(ROOT, 'tools', 'analysis_tools', 'confusion_matrix.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_confusion_matrix_png_from_dumped_predictions(tmp_path, capsys):
    from PIL import Image

    from gsclip_mm.evaluation import ZeroShotAccuracy
    preds, png = tmp_path / 'preds.pkl', tmp_path / 'cm' / 'confusion.png'
    _dump_predictions(preds)
    matrix = _confusion_tool().main([str(preds), '--out', str(png), '--classes', *SHOWN])
    assert matrix.tolist() == EXPECTED
    assert '(no prediction)' in capsys.readouterr().out
    # The diagonal is the zero-shot metric's top-1 hits over the same classes.
    metric = ZeroShotAccuracy(classes=SHOWN)
    metric.process(None, __import__('mmengine').load(str(preds)))
    acc = metric.compute_metrics(metric.results)
    assert 100 * sum(EXPECTED[i][i] for i in range(4)) / 8 == pytest.approx(acc['overall_acc'])  # 4 of 8
    with Image.open(png) as im:
        assert im.format == 'PNG' and min(im.size) > 300


def test_confusion_matrix_without_misses_is_square_over_the_classes(tmp_path):
    preds = tmp_path / 'preds.pkl'
    _dump_predictions(preds)
    from gsclip_mm.evaluation import ZeroShotAccuracy
    tool = _confusion_tool()
    metric = ZeroShotAccuracy()
    metric.process(None, __import__('mmengine').load(str(preds)))
    metric_results = [r for r in metric.results if r['unfittable'] is None and torch.isfinite(r['pred_score']).all()]
    pred, gt, subset = tool.subset_predictions(metric_results, None)  # the whole vocabulary competes
    matrix, has_miss = tool.confusion_matrix(pred, gt, len(subset))
    assert not has_miss and subset == list(VOCAB) and matrix.shape == (5, 5)
    # chair's first object now goes to lamp (it competes); the lamp object is counted, as lamp
    assert matrix[1].tolist() == [0, 0, 0, 1, 1] and matrix[4].tolist() == [0, 0, 0, 0, 1]
    png = tmp_path / 'normalized.png'
    tool.main([str(preds), '--out', str(png), '--classes', 'all', '--normalize'])
    assert png.stat().st_size > 0


def test_config_reads_a_synthetic_set_written_by_the_tool(tmp_path):
    """The config's own dataset and pipelines, built in mmpretrain's scope, on a few scenes from
    make_synthetic_sunrgbd.py (lighter fitting): PackInputs gives [N, 14] Gaussian tensors and labels that index
    the config's classes, and the classifier takes the collated batch."""
    import subprocess
    import sys

    from mmengine.dataset import default_collate
    from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'dataset_converters', 'make_synthetic_sunrgbd.py'),
                           '--out-dir', str(tmp_path), '--num-scenes', '6', '--seed', '3', '--height', '120',
                           '--width', '160'], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = Config.fromfile(CONFIG)
    ds_cfg = cfg.train_dataloader.dataset.dataset
    ds_cfg.data_root = str(tmp_path)
    for t in ds_cfg.pipeline:
        if t['type'] == 'gsclip_mm.FitGaussians':
            t.update(cache_dir=str(tmp_path / 'cache'), num_steps=4, resolution=16)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = MMPRETRAIN_DATASETS.build(ds_cfg)
        batch = default_collate([dataset[i] for i in range(min(4, len(dataset)))])
        model = MMPRETRAIN_MODELS.build(dict(cfg.model, backbone=dict(cfg.model.backbone, init_cfg=None)))
    assert type(dataset).__name__ == 'SUNRGBDObjectDataset' and dataset.metainfo['classes'] == cfg.classes
    assert batch['inputs'].shape == (len(batch['data_samples']), 256, GS_DIM) and len(batch['data_samples']) > 1
    for sample in batch['data_samples']:
        assert int(sample.gt_label) == cfg.classes.index(sample.metainfo['class_name'])
    loss = model(**model.data_preprocessor(batch, True), mode='loss')['loss']
    assert torch.isfinite(loss) and loss > 0
