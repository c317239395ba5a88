"""gsclip_collate: pseudo_collate that keeps a test set's unfittable objects as data samples only."""
import subprocess
import sys

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS
from mmengine.runner import Runner

from gsclip_mm.datasets.collate import gsclip_collate
from gsclip_mm.structures import is_unfittable
from gsclip_mm.structures import GSCLIPDataSample


def fitted(i):
    return dict(inputs=dict(gaussians=torch.full((2, 14), float(i))),
                data_samples=GSCLIPDataSample(metainfo=dict(class_name='bed', sample_idx=i)))


def unfittable(i, reason='no points in box'):
    return dict(inputs=None, data_samples=GSCLIPDataSample(
        metainfo=dict(class_name='chair', sample_idx=i, instance_idx=0, img_path=f'/d/{i}.jpg', unfittable=reason)))


def test_all_fitted_is_pseudo_collate():
    batch = [fitted(0), fitted(1)]
    out, ref = gsclip_collate(batch), pseudo_collate(batch)
    assert out.keys() == ref.keys() and out['data_samples'] == ref['data_samples']
    assert [t.tolist() for t in out['inputs']['gaussians']] == [t.tolist() for t in ref['inputs']['gaussians']]


def test_mixed_batch_collates_fitted_inputs_and_keeps_every_sample_in_order():
    batch = [unfittable(0), fitted(1), unfittable(2), fitted(3)]
    out = gsclip_collate(batch)
    assert [t[0, 0].item() for t in out['inputs']['gaussians']] == [1.0, 3.0]
    assert [ds.sample_idx for ds in out['data_samples']] == [0, 1, 2, 3]
    assert [is_unfittable(ds) for ds in out['data_samples']] == [True, False, True, False]
    everything_unfittable = gsclip_collate([unfittable(0), unfittable(1)])
    assert everything_unfittable['inputs'] == {} and len(everything_unfittable['data_samples']) == 2


def test_inconsistent_samples_are_named():
    no_reason = unfittable(7)
    no_reason['data_samples'] = GSCLIPDataSample(metainfo=dict(img_path='/d/7.jpg', sample_idx=7))
    with pytest.raises(ValueError, match=r"sample 1 of the batch \(img_path='/d/7.jpg', sample_idx=7\) has no inputs"):
        gsclip_collate([fitted(0), no_reason])
    reason_with_inputs = fitted(3)
    reason_with_inputs['data_samples'].set_metainfo(dict(unfittable='x'))
    with pytest.raises(ValueError, match='sample 0 of the batch .* has inputs and a metainfo "unfittable"'):
        gsclip_collate([reason_with_inputs])


def test_runner_builds_it_from_a_config():
    assert FUNCTIONS.get('gsclip_collate') is gsclip_collate
    loader = Runner.build_dataloader(dict(dataset=[unfittable(0), fitted(1), fitted(2)], batch_size=3,
                                          num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                                          collate_fn=dict(type='gsclip_collate')))
    batch, = list(loader)
    assert len(batch['inputs']['gaussians']) == 2 and len(batch['data_samples']) == 3


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
