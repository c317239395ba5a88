"""tools/extract_image_embeddings.py on the real sample scene: fills the pipeline's cache, resumes, reports failures."""
import io
import os
import os.path as osp
import shutil
import sys

import numpy as np
import pytest
import torch

import gsclip_mm  # noqa: F401  (fills the registries)
from gsclip_mm.registry import DATASETS, TRANSFORMS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SAMPLE = osp.join(ROOT, 'tests', 'data', 'sunrgbd_sample')

CFG = '''
default_scope = 'gsclip_mm'
clip = dict(model_name='GSCLIP-Tiny-64', pretrained=None, clip_seed=0)
_data = dict(type='SUNRGBDObjectDataset', data_root={root!r}, ann_file='sunrgbd_infos_val.pkl',
             data_prefix=dict(pts='points', img='sunrgbd_trainval/image'), min_points=10,
             metainfo=dict(classes=('bed', 'table', 'sofa', 'chair', 'toilet', 'desk', 'dresser', 'night_stand',
                                    'bookshelf', 'bathtub')))
embedding = dict(type='LoadCLIPImageEmbedding', **clip, cache_dir={cache!r}, cache_only=True)
train_dataloader = dict(dataset=dict(type='ClassBalancedDataset', oversample_thr=0.1, dataset=dict(
    _data, pipeline=[dict(type='LoadObjectImage'), embedding])))
val_dataloader = dict(dataset=dict(_data, pipeline=[dict(type='LoadObjectImage')]))  # no step: skipped
'''


@pytest.fixture(scope='module')
def tool():
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import extract_image_embeddings
    finally:
        sys.path.pop(0)
    return extract_image_embeddings


def write_cfg(tmp_path, root=SAMPLE):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(CFG.format(root=str(root), cache=str(tmp_path / 'cache')))
    return str(cfg)


def npy_files(root):
    return sorted(osp.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith('.npy'))


def test_fills_the_cache_the_training_pipeline_reads_and_resumes(tool, tmp_path):
    from mmengine.config import Config
    cfg = write_cfg(tmp_path)
    summary = tool.main([cfg, '--device', 'cpu', '--batch-size', '2'])
    assert (summary['objects'], summary['encoded'], summary['cached'], summary['failures']) == (2, 2, 0, [])
    assert tool.exit_code(summary, 0.0) == 0
    files = npy_files(tmp_path / 'cache')
    assert len(files) == 2

    # the training pipeline (cache_only) finds exactly these embeddings; computed one at a time they agree
    train = Config.fromfile(cfg).train_dataloader.dataset.dataset
    dataset = DATASETS.build(train)
    got = {dataset[i]['class_name']: torch.from_numpy(dataset[i]['img_embed']) for i in range(len(dataset))}
    assert sorted(got) == ['bed', 'night_stand']
    single = TRANSFORMS.build(dict(train.pipeline[1], cache_dir=False, cache_only=False))
    load = TRANSFORMS.build(dict(type='LoadObjectImage'))
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        ref = single(load(dict(info)))['img_embed']
        torch.testing.assert_close(got[info['class_name']], torch.from_numpy(ref), atol=1e-5, rtol=0)
        assert abs(float(got[info['class_name']].norm()) - 1) < 1e-5

    # resumable: a second run encodes nothing; one lost file is encoded again, alone
    before = {f: open(f, 'rb').read() for f in files}
    again = tool.main([cfg, '--device', 'cpu'])
    assert (again['encoded'], again['cached']) == (0, 2)
    os.remove(files[0])
    resumed = tool.main([cfg, '--device', 'cpu', '--batch-size', '1'])
    assert (resumed['encoded'], resumed['cached']) == (1, 1)
    after = {f: open(f, 'rb').read() for f in npy_files(tmp_path / 'cache')}
    assert set(after) == set(before)
    np.testing.assert_allclose(np.load(files[0]), np.load(io.BytesIO(before[files[0]])), atol=1e-5)  # batch 1 vs 2
    assert after[files[1]] == before[files[1]]  # the cached one was not rewritten


def test_an_unreadable_crop_is_reported_and_fails_the_run(tool, tmp_path):
    root = tmp_path / 'sample'
    shutil.copytree(SAMPLE, root)
    (root / 'sunrgbd_trainval' / 'image' / '000017.jpg').write_bytes(b'not a jpeg')
    summary = tool.main([write_cfg(tmp_path, root), '--device', 'cpu'])
    assert summary['encoded'] == 0 and len(summary['failures']) == 2
    assert all('cannot decode image file' in reason for _, reason in summary['failures'])
    assert tool.exit_code(summary, 0.0) == 1 and tool.exit_code(summary, 1.0) == 0


def test_a_config_without_the_step_is_an_error(tool, tmp_path):
    cfg = tmp_path / 'none.py'
    cfg.write_text(CFG.format(root=SAMPLE, cache=str(tmp_path / 'c')) + 'train_dataloader = None\n')
    with pytest.raises(ValueError, match='no dataloader among .* has a LoadCLIPImageEmbedding step'):
        tool.main([str(cfg), '--device', 'cpu'])
