"""gsclip_mm/utils/config_utils.py: what the tools read from a config (the fitting step of its datasets)."""
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from gsclip_mm.utils.config_utils import (find_fit_step, fitting_configs, load_config, split_dataset, split_pipeline,
                                          unwrap_dataset)

LOAD = [dict(type='LoadObjectPoints'), dict(type='LoadObjectImage')]
FIT = dict(type='gsclip_mm.FitGaussians', cache_dir='cache', num_steps=3)
TAIL = [dict(type='SampleGaussians', num_points=8), dict(type='PackGSCLIPInputs')]
OBJECTS = dict(type='SUNRGBDObjectDataset', ann_file='a.pkl', pipeline=[*LOAD, FIT, *TAIL])


def test_unwrap_dataset_goes_through_every_wrapper():
    inner = dict(type='ClassBalancedDataset', oversample_thr=0.1, dataset=OBJECTS)
    wrapped = dict(type='RepeatDataset', times=2, dataset=inner)
    assert unwrap_dataset(wrapped) is OBJECTS
    assert unwrap_dataset(OBJECTS) is OBJECTS


def test_find_fit_step_with_and_without_scope():
    assert find_fit_step([*LOAD, FIT, *TAIL]) == 2
    assert find_fit_step([*LOAD, dict(type='FitGaussians'), FIT]) == 2  # the first one
    assert find_fit_step([*LOAD, dict(type='PointsToGaussians'), *TAIL]) is None


def test_split_pipeline_returns_copies_and_names_the_place():
    pipeline = [*LOAD, FIT, *TAIL]
    pre, fit = split_pipeline(pipeline, 'x')
    assert pre == LOAD and fit == FIT
    pre[0]['type'], fit['num_steps'] = 'Changed', 99  # the caller's config is left alone
    assert pipeline[0]['type'] == 'LoadObjectPoints' and pipeline[2]['num_steps'] == 3
    with pytest.raises(ValueError, match='val_dataloader.dataset: its pipeline has no FitGaussians step'):
        split_pipeline(LOAD, 'val_dataloader.dataset')


def test_fitting_configs_of_each_split():
    cfg = Config(dict(train_dataloader=dict(dataset=dict(type='ClassBalancedDataset', dataset=OBJECTS)),
                      val_dataloader=dict(dataset=dict(OBJECTS, ann_file='b.pkl', pipeline=LOAD)),
                      test_dataloader=None))
    ds_cfg, pre, fit = fitting_configs(cfg, 'train')
    assert ds_cfg == dict(type='SUNRGBDObjectDataset', ann_file='a.pkl') and pre == LOAD and fit == FIT
    assert len(cfg.train_dataloader.dataset.dataset.pipeline) == 5  # not popped from the config itself
    with pytest.raises(ValueError, match='val_dataloader.dataset'):
        fitting_configs(cfg, 'val')
    assert fitting_configs(cfg, 'test') is None and split_dataset(cfg, 'test') is None
    assert split_dataset(cfg, 'val')['ann_file'] == 'b.pkl'


def test_load_config_merges_options_last_and_sets_the_scope(tmp_path):
    path = tmp_path / 'cfg.py'
    path.write_text("default_scope = 'mmdet3d'\ntrain_cfg = dict(max_epochs=3, val_interval=1)\n")
    cfg = load_config(str(path), {'train_cfg.max_epochs': 7})
    assert cfg.train_cfg == dict(max_epochs=7, val_interval=1)
    assert load_config(str(path)).train_cfg.max_epochs == 3
    # the tools build from gsclip_mm's registries, whatever scope the config names
    assert DefaultScope.get_current_instance().scope_name == 'gsclip_mm'
