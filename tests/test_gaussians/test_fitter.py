"""GaussianFitter, the fitting service: load-or-fit through the cache, keys, settings checks, the failure record
and its explicit handoff to the dataset (also to a subclass of FitGaussians)."""
import copy
import os.path as osp

import numpy as np
import pytest
from mmcv.transforms import Compose

import gsclip_mm.gaussians.fitter as fitter_mod
from gsclip_mm.datasets.transforms import FitGaussians
from gsclip_mm.gaussians import FitSettings, FitStats, GaussianFitter
from gsclip_mm.registry import DATASETS, TRANSFORMS
from gsclip_mm.utils.config_utils import find_fit_step

SAMPLE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'sunrgbd_sample')
SETTINGS = dict(num_steps=4, resolution=12, max_gaussians=32)
LOAD = [dict(type='LoadObjectPoints'), dict(type='LoadObjectImage')]


@TRANSFORMS.register_module(force=True)
class _RenamedFit(FitGaussians):
    """A user's subclass: another name in the registry, the same service."""


def sample_dataset(ann_file=osp.join(SAMPLE, 'sunrgbd_infos_val.pkl'), **kwargs):
    return DATASETS.build(dict(type='SUNRGBDObjectDataset', data_root=SAMPLE, ann_file=ann_file,
                               data_prefix=dict(pts=osp.join(SAMPLE, 'points'),
                                                img=osp.join(SAMPLE, 'sunrgbd_trainval', 'image')), **kwargs))


def loaded(info):
    return Compose([TRANSFORMS.build(t) for t in LOAD])(copy.deepcopy(info))


def test_load_or_fit_hits_the_cache_on_the_second_call(tmp_path, monkeypatch):
    info = sample_dataset(pipeline=[]).get_data_info(0)
    fitter = GaussianFitter(SETTINGS, cache_dir=str(tmp_path / 'cache'))
    first, psnr = fitter.load_or_fit(loaded(info))
    assert first.shape == (32, 14) and 0 < psnr < 60
    assert fitter.cache.exists(fitter.key(info))  # keyed from the dataset's hashes, no data loaded

    def no_fit(*a, **k):
        raise AssertionError('fitted again: the cache was not used')
    monkeypatch.setattr(fitter_mod, 'fit_batch', no_fit)
    again, psnr_again = GaussianFitter(SETTINGS, cache_dir=str(tmp_path / 'cache')).load_or_fit(loaded(info))
    np.testing.assert_array_equal(again, fitter.cache.load(fitter.key(info))[0])  # the file, not a refit
    np.testing.assert_allclose(again, first, rtol=1e-5, atol=1e-6)  # (the PLY stores logit / log / SH forms)
    assert psnr_again == pytest.approx(psnr, abs=1e-6)
    with pytest.raises(FileNotFoundError, match='no cached Gaussians'):  # cache_only: another setting misses
        GaussianFitter(dict(SETTINGS, num_steps=5), str(tmp_path / 'cache'), cache_only=True).load_or_fit(
            loaded(info))


def test_tile_size_leaves_the_key_and_other_settings_do_not():
    info = sample_dataset(pipeline=[]).get_data_info(0)
    key = GaussianFitter(SETTINGS).key(info)
    assert GaussianFitter(dict(SETTINGS, tile_size=16)).key(info) == key
    assert GaussianFitter(dict(SETTINGS, num_steps=5)).key(info) != key
    # caches written while tile_size (then always 4) was in the key keep their keys
    assert FitSettings.build(SETTINGS, tile_size=8).key_dict() == dict(FitSettings.build(SETTINGS).to_dict())


@pytest.mark.parametrize('setting,value,match', [
    ('num_steps', -1, 'num_steps=-1: must be >= 0'),
    ('resolution', 2, 'resolution=2: must be >= 4'),
    ('max_gaussians', 1, 'max_gaussians=1: must be >= 2'),
    ('mode', 'scenes', "mode='scenes': must be 'object' or 'scene'"),
    ('scene_scale', 0.0, r'scene_scale=0.0: must be in \(0, 4\]'),
    ('voxel_size', -0.1, 'voxel_size=-0.1: must be >= 0'),
    ('prune_opacity', 1.0, r'prune_opacity=1.0: must be in \[0, 1\)'),
    ('max_points', 1, 'max_points=1: must be None or >= 2'),
])
def test_each_settings_check_names_its_setting_and_value(setting, value, match):
    with pytest.raises(ValueError, match=match):
        FitSettings.build({setting: value})


def test_a_failure_is_recorded_and_read_back_by_the_dataset_through_gaussian_fit(tmp_path, unfittable_bed):
    """The tool's path: a chunk records the bed's failure; the dataset is handed the fit explicitly (its
    pipeline has no fitting step at all) and drops the bed in training, keeps it as a miss in testing."""
    ann, cache = unfittable_bed, str(tmp_path / 'cache')
    infos = [sample_dataset(ann, pipeline=[]).get_data_info(i) for i in range(2)]
    fitter = GaussianFitter(SETTINGS, cache_dir=cache)
    stats = FitStats()
    fitter.fit_object_chunk(infos, loaded, stats, set())
    assert (stats.total, stats.fitted, len(stats.failures)) == (2, 1, 1)
    fitter.record_failures(stats.failed_record(), stats.fitted_keys)
    bed = next(i for i in infos if i['class_name'] == 'bed')
    assert 'no point projects' in fitter.failure_of(bed)['reason'] and fitter.failure_of(infos[0]) is None

    fit_cfg = dict(type='FitGaussians', cache_dir=cache, **SETTINGS)
    train = sample_dataset(ann, pipeline=[], gaussian_fit=fit_cfg)
    assert len(train) == 1 and train.filter_counts['unfittable'] == 1
    assert train.get_data_info(0)['class_name'] == 'night_stand'
    test = sample_dataset(ann, pipeline=[], gaussian_fit=fitter, test_mode=True)  # the service itself
    assert len(test) == 2 and 'no point projects' in test.get_data_info(1)['unfittable']
    # False: no failure record applies, even with the fitting step in the pipeline
    assert len(sample_dataset(ann, pipeline=[*LOAD, fit_cfg], gaussian_fit=False)) == 2
    # another fit's record (other settings) does not name these objects
    assert len(sample_dataset(ann, pipeline=[], gaussian_fit=dict(fit_cfg, num_steps=5))) == 2


def test_a_subclass_of_fitgaussians_keeps_failure_filtering(tmp_path, unfittable_bed):
    """Found by the service it holds, not by its class name: in the dataset's pipeline and by the tools."""
    ann, cache = unfittable_bed, str(tmp_path / 'cache')
    infos = [sample_dataset(ann, pipeline=[]).get_data_info(i) for i in range(2)]
    fitter = GaussianFitter(SETTINGS, cache_dir=cache)
    stats = FitStats()
    fitter.fit_object_chunk(infos, loaded, stats, set())
    fitter.record_failures(stats.failed_record(), stats.fitted_keys)
    pipeline = [*LOAD, dict(type='_RenamedFit', cache_dir=cache, **SETTINGS)]
    train = sample_dataset(ann, pipeline=pipeline)
    assert len(train) == 1 and train.filter_counts['unfittable'] == 1
    assert find_fit_step(pipeline) == 2 and find_fit_step([*LOAD, dict(type='gsclip_mm._RenamedFit')]) == 2


def test_object_chunk_resumes_from_the_cache_and_counts_what_it_found(tmp_path):
    infos = [sample_dataset(pipeline=[]).get_data_info(i) for i in range(2)]
    fitter = GaussianFitter(SETTINGS, cache_dir=str(tmp_path / 'cache'))
    first, second = FitStats(), FitStats()
    fitter.fit_object_chunk(infos, loaded, first, set())
    fitter.fit_object_chunk(infos, loaded, second, set())
    assert (first.fitted, first.cached, second.fitted, second.cached) == (2, 0, 0, 2)
    merged = FitStats.merge([first.to_dict(), second.to_dict()]).summary(seconds=1.0)
    assert (merged['objects'], merged['fitted'], merged['cached_before'], merged['failed']) == (4, 2, 2, 0)
