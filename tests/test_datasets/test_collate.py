"""gsclip_collate: pseudo_collate of the samples with inputs; a test set's recorded misses beside the batch."""
import subprocess
import sys

import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS
from mmengine.runner import Runner

from gsclip_mm.datasets import SUNRGBDObjectDataset
from gsclip_mm.datasets.collate import gsclip_collate
from gsclip_mm.structures import GSCLIPDataSample


def fitted(i):
    return dict(inputs=dict(gaussians=torch.full((2, 14), float(i))),
                data_samples=GSCLIPDataSample(metainfo=dict(class_name='bed', sample_idx=i)))


def miss(i, reason='no points in box'):
    """A test set's recorded miss, as ``SUNRGBDObjectDataset.miss_sample`` packs it."""
    return SUNRGBDObjectDataset.miss_sample(
        dict(class_name='chair', sample_idx=i, instance_idx=0, img_path=f'/d/{i}.jpg', gt_label=1), reason)


def test_all_fitted_is_pseudo_collate():
    batch = [fitted(0), fitted(1)]
    out, ref = gsclip_collate(batch), pseudo_collate(batch)
    assert out.keys() == ref.keys() and out['data_samples'] == ref['data_samples']
    assert [t.tolist() for t in out['inputs']['gaussians']] == [t.tolist() for t in ref['inputs']['gaussians']]


def test_mixed_batch_collates_the_others_and_moves_misses_beside_the_batch():
    batch = [miss(0), fitted(1), miss(2, 'image not found'), fitted(3)]
    out = gsclip_collate(batch)
    assert set(out) == {'inputs', 'data_samples', 'misses'}
    assert [t[0, 0].item() for t in out['inputs']['gaussians']] == [1.0, 3.0]
    assert [ds.sample_idx for ds in out['data_samples']] == [1, 3]  # what the model sees: no miss
    assert list(out['misses']) == [0, 2] and [ds.sample_idx for ds in out['misses'].values()] == [0, 2]
    assert out['misses'][2] is batch[2]['data_samples']
    only_misses = gsclip_collate([miss(0), miss(1)])
    assert only_misses['inputs'] == {} and only_misses['data_samples'] == [] and list(only_misses['misses']) == [0, 1]


def test_runner_builds_it_from_a_config():
    assert FUNCTIONS.get('gsclip_collate') is gsclip_collate
    loader = Runner.build_dataloader(dict(dataset=[miss(0), fitted(1), fitted(2)], batch_size=3,
                                          num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                                          collate_fn=dict(type='gsclip_collate')))
    batch, = list(loader)
    assert len(batch['inputs']['gaussians']) == 2 and len(batch['data_samples']) == 2
    assert list(batch['misses']) == [0] and batch['misses'][0].unfittable == 'no points in box'


def test_default_scope_alone_registers_it():
    # What Runner.from_cfg does with default_scope='gsclip_mm' and no imports: building the dataset
    # imports gsclip_mm.datasets through the registry's locations, before the collate_fn is looked up.
    code = ('from mmengine.registry import init_default_scope, DATASETS, FUNCTIONS\n'
            'init_default_scope("gsclip_mm")\n'
            'assert FUNCTIONS.get("gsclip_collate") is None\n'
            'with DATASETS.switch_scope_and_registry(None):  # what DATASETS.build does first\n'
            '    pass\n'
            'print(FUNCTIONS.get("gsclip_collate").__module__)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ['gsclip_mm.datasets.collate']
