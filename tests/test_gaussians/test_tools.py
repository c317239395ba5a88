"""tools/fit_gaussians.py (resume, corrupt cache, failures), tools/analysis_tools/visualize_fit.py and
tools/analysis_tools/benchmark_fitting.py."""
import importlib.util
import json
import os
import os.path as osp
import pickle
import sys
import time

import mmcv
import numpy as np
import pytest

from gsclip_mm.gaussians import GaussianCache
from gsclip_mm.registry import TRANSFORMS
from gsclip_mm.utils.config_utils import unwrap_dataset

TOOLS = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', 'tools'))


def load_tool(path):
    """A tool as a module, from its file (tools are scripts, not a package; none imports another)."""
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(path))[0], osp.join(TOOLS, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchmark_fitting = load_tool('analysis_tools/benchmark_fitting.py')
fit_gaussians = load_tool('fit_gaussians.py')
visualize_fit = load_tool('analysis_tools/visualize_fit.py')

SAMPLE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'sunrgbd_sample')
FIT = "dict(type='FitGaussians', cache_dir={cache!r}, num_steps=4, resolution=12, max_gaussians=32)"


def write_config(tmp_path, ann_file=osp.join(SAMPLE, 'sunrgbd_infos_val.pkl')):
    cache = str(tmp_path / 'cache')
    cfg = tmp_path / 'cfg.py'
    pipeline = f"[dict(type='LoadObjectPoints'), dict(type='LoadObjectImage'), {FIT.format(cache=cache)}]"
    dataset = (f"dict(type='SUNRGBDObjectDataset', data_root={SAMPLE!r}, ann_file={ann_file!r}, "
               f"data_prefix=dict(pts={osp.join(SAMPLE, 'points')!r}, "
               f"img={osp.join(SAMPLE, 'sunrgbd_trainval', 'image')!r}), pipeline={pipeline})")
    # train and val name the same objects: each object is fitted once
    cfg.write_text(f'train_dataloader = dict(dataset=dict(type="RepeatDataset", times=2, dataset={dataset}))\n'
                   f'val_dataloader = dict(dataset={dataset})\n')
    return str(cfg), cache


def test_fit_resume_and_corrupt(tmp_path):
    cfg, cache = write_config(tmp_path)
    first = fit_gaussians.main([cfg, '--batch-size', '2'])
    assert (first['objects'], first['fitted'], first['cached_before'], first['failed']) == (2, 2, 0, 0)
    assert 0 < first['psnr_min'] <= first['psnr_mean'] < 60
    files = sorted(p for p in (tmp_path / 'cache').rglob('*.ply'))
    assert len(files) == 2
    assert json.load(open(osp.join(cache, 'fit_summary.json')))['fitted'] == 2
    # resume: nothing left to do
    second = fit_gaussians.main([cfg])
    assert (second['fitted'], second['cached_before']) == (0, 2)
    assert second['psnr_mean'] == pytest.approx(first['psnr_mean'], abs=1e-4)
    # a truncated file is detected and refitted; the other one is kept
    files[0].write_bytes(files[0].read_bytes()[:200])
    third = fit_gaussians.main([cfg])
    assert (third['fitted'], third['cached_before']) == (1, 1)
    assert GaussianCache(cache).load(files[0].stem) is not None
    # a changed setting is a different key: refits both
    fourth = fit_gaussians.main([cfg, '--fit-options', 'num_steps=3'])
    assert fourth['fitted'] == 2


def test_failures_are_counted_with_reasons(tmp_path):
    with open(osp.join(SAMPLE, 'sunrgbd_infos_val.pkl'), 'rb') as f:
        infos = pickle.load(f)
    infos['data_list'][0]['images']['CAM0']['depth2img'] = np.zeros((3, 3)).tolist()  # degenerate camera
    ann = tmp_path / 'bad_infos.pkl'
    ann.write_bytes(pickle.dumps(infos))
    cfg, _ = write_config(tmp_path, str(ann))
    summary = fit_gaussians.main([cfg, '--splits', 'val'])
    assert (summary['objects'], summary['fitted'], summary['failed']) == (2, 0, 2)
    assert summary['failure_reasons'] == {'FitInputError': 2}
    assert all('depth2img' in f['reason'] and '000017.jpg' in f['object'] for f in summary['failures'])


def test_no_fit_step_is_an_error(tmp_path):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("train_dataloader = dict(dataset=dict(type='SUNRGBDObjectDataset', ann_file='x.pkl', "
                   "pipeline=[dict(type='LoadObjectPoints')]))\n")
    with pytest.raises(ValueError, match='no FitGaussians'):
        fit_gaussians.main([str(cfg)])


def test_visualize_fit(tmp_path):
    cfg, _ = write_config(tmp_path)
    out = visualize_fit.main([cfg, '--index', '0', '--size', '40', '--out', str(tmp_path / 'v.png'),
                              '--fit-options', 'num_steps=40', 'init_opacity=0.5'])
    png = mmcv.imread(out)
    # night stand box, shifted by SUN RGB-D's -0.5 px and rounded outwards: x 54.9..187.0 -> 54..187 (133 px),
    # y 233.1..360.7 -> 232..361 (129 px)
    assert png.shape == (round(40 * 129 / 133), 3 * 40 + 8, 3)
    render, target = png[:, 88:].astype(float), png[:, 44:84].astype(float)
    assert (render.max(-1) > 3).mean() > 0.3  # the Gaussians cover much of the box
    assert abs(render.mean() - target.mean()) < 0.5 * target.mean()  # with about the right brightness


def test_visualize_fit_scene_mode(tmp_path):
    """Scene mode: the object's panel renders its cut Gaussians, and a second PNG the whole scene's fit."""
    cfg, _ = write_config(tmp_path)
    out = visualize_fit.main([cfg, '--index', '0', '--size', '73', '--out', str(tmp_path / 'v.png'), '--fit-options',
                              'mode=scene', 'scene_scale=0.1', 'num_steps=30', 'init_opacity=0.5'])
    scene = mmcv.imread(str(tmp_path / 'v_scene.png')).astype(float)
    assert scene.shape == (53, 2 * 73 + 4, 3)  # the 730x530 image | the render, 73 wide
    image, render = scene[:, :73], scene[:, 77:]
    assert np.abs(render - image).mean() < 25  # the scene fit reproduces the photo (8-bit levels)
    assert np.abs(render - image[:, ::-1]).mean() > np.abs(render - image).mean() + 5  # and not by chance
    assert mmcv.imread(out).shape[1] == 3 * 73 + 8


def test_benchmark_worker(monkeypatch):
    """ms/step and objects/s against the fitting calls the worker really made, timed here."""
    import gsclip_mm.gaussians as gaussians
    fit_batch, calls = gaussians.fit_batch, []

    def timed_fit_batch(inputs, settings, *args, **kwargs):
        start = time.perf_counter()
        out = fit_batch(inputs, settings, *args, **kwargs)
        calls.append(dict(objects=len(inputs), steps=settings.num_steps, seconds=time.perf_counter() - start))
        return out

    monkeypatch.setattr(gaussians, 'fit_batch', timed_fit_batch)
    row = benchmark_fitting.worker(dict(threads=1, gaussians=40, resolution=12, batch=2, steps=4, fit_steps=500,
                                        backend='tiles'))
    warmup, timed = calls  # 2 warm-up steps, then the timed fit
    assert (warmup['objects'], warmup['steps'], timed['objects'], timed['steps']) == (2, 2, 2, 4)
    ms_per_step = 1000 * timed['seconds'] / 4
    assert row['ms_per_step'] == pytest.approx(ms_per_step, rel=0.1)  # the worker times only the timed fit
    # objects/s of a 500-step fit: 2 objects per 500 such steps
    assert row['objects_per_s'] == pytest.approx(2 / (500 * ms_per_step / 1000), rel=0.1)
    assert row['peak_rss_mb'] > 10 and 0 < row['psnr'] < 60


def test_fit_sharded_over_two_ranks(tmp_path):
    """torchrun --nproc_per_node 2 ... --launcher pytorch: each rank fits one object, the summary has both."""
    import os
    import socket
    import subprocess
    cfg, cache = write_config(tmp_path)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    torchrun = osp.join(osp.dirname(sys.executable), 'torchrun')
    out = subprocess.run([torchrun, '--nproc_per_node', '2', '--master_port', str(port),
                          osp.join(TOOLS, 'fit_gaussians.py'), cfg, '--launcher', 'pytorch', '--splits', 'val',
                          '--batch-size', '1'],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'rank 0/2 fits 1 objects in chunks of 1' in out.stdout + out.stderr
    summary = json.load(open(osp.join(cache, 'fit_summary.json')))
    assert (summary['objects'], summary['fitted'], summary['failed']) == (2, 2, 0)
    assert len(list((tmp_path / 'cache').rglob('*.ply'))) == 2


def build_dataset(cfg_path, split='val_dataloader', **overrides):
    from mmengine.config import Config

    from gsclip_mm.registry import DATASETS
    ds_cfg = unwrap_dataset(Config.fromfile(cfg_path)[split]['dataset'].to_dict())
    return DATASETS.build(dict(ds_cfg, **overrides))


def test_unfittable_object_is_recorded_skipped_in_training_and_a_miss_in_testing(tmp_path, unfittable_bed):
    cfg, cache = write_config(tmp_path, unfittable_bed)
    assert fit_gaussians.cli([cfg, '--splits', 'val']) == 1  # a failure is an error by default
    record = GaussianCache(cache).failures()
    assert len(record) == 1
    (failure, ) = record.values()
    assert failure['object'].endswith('000017.jpg#1') and 'no point projects' in failure['reason']
    assert fit_gaussians.cli([cfg, '--splits', 'val', '--allow-failures', '0.5']) == 0  # 1 of 2 accepted
    assert fit_gaussians.cli([cfg, '--splits', 'val', '--allow-failures', '0.4']) == 1
    # the dataset's key of the failed object (from its content hashes, nothing loaded) is the record's key
    fitter = TRANSFORMS.build(eval(FIT.format(cache=cache)))
    train = build_dataset(cfg, test_mode=False)
    assert len(train) == 1 and train[0]['gaussians'].shape == (32, 14)  # (this pipeline does not pack)
    assert train.get_data_info(0)['class_name'] == 'night_stand' and train.filter_counts['unfittable'] == 1
    test = build_dataset(cfg, test_mode=True)
    assert len(test) == 2 and test.filter_counts['unfittable'] == 1
    bed = test.get_data_info(1)
    assert fitter.key(bed) in record and bed['unfittable'] == failure['reason']
    miss = test[1]
    assert miss['inputs'] is None
    assert miss['data_samples'].unfittable == failure['reason'] and miss['data_samples'].class_name == 'bed'
    assert test[0]['gaussians'].shape == (32, 14)  # the night stand, from the cache


def test_unusable_object_in_the_pipeline_is_refetched_in_training_and_a_miss_in_testing(tmp_path, unfittable_bed):
    """No pre-fit: fitting inside the pipeline meets the bad bed."""
    cfg, _ = write_config(tmp_path, unfittable_bed)
    train = build_dataset(cfg, test_mode=False)
    assert len(train) == 2
    bed = next(i for i in range(2) if train.get_data_info(i)['class_name'] == 'bed')
    assert train.prepare_data(bed) is None  # MMEngine's __getitem__ then refetches another object
    assert train[bed]['class_name'] == 'night_stand'
    test = build_dataset(cfg, test_mode=True)
    miss = test[bed]
    assert miss['inputs'] is None and 'no point projects' in miss['data_samples'].unfittable


def test_key_of_the_dataset_info_equals_the_key_computed_from_the_files(tmp_path):
    """FitGaussians keys an object the same from the dataset's hashes as from the loaded files."""
    cfg, cache = write_config(tmp_path)
    ds = build_dataset(cfg, pipeline=[])
    fitter = TRANSFORMS.build(eval(FIT.format(cache=cache)))
    load = [TRANSFORMS.build(dict(type='LoadObjectPoints')), TRANSFORMS.build(dict(type='LoadObjectImage'))]
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        results = dict(info)
        for t in load:
            results = t(results)
        del results['img_sha256'], results['points_sha256']
        assert fitter.key(results) == fitter.key(info)


def test_read_only_cache_still_exits_zero(tmp_path, monkeypatch):
    """The work is done: a summary or record that cannot be written is a warning, not a failed run.

    (Simulated: CI runs as root, who can write read-only folders.)"""
    import gsclip_mm.gaussians.cache as cache_mod
    cfg, cache = write_config(tmp_path)
    assert fit_gaussians.cli([cfg, '--splits', 'val']) == 0

    def read_only(path, data):
        raise PermissionError(13, 'Permission denied', path)

    monkeypatch.setattr(fit_gaussians, 'atomic_write', read_only)
    monkeypatch.setattr(cache_mod, 'atomic_write', read_only)
    logged = []
    monkeypatch.setattr(fit_gaussians, 'print_log', lambda msg, **kw: logged.append(msg))
    assert fit_gaussians.cli([cfg, '--splits', 'val']) == 0
    assert any('could not write the summary' in m and 'Permission denied' in m for m in logged)


def test_resumed_run_writes_exactly_what_an_uninterrupted_run_writes(tmp_path):
    """A run killed after one object (its chunk-mate missing) resumes to the same bytes: the missing object
    is fitted in its original batch, not alone (which would differ at round-off, amplified by Adam)."""
    cfg, cache = write_config(tmp_path)
    # unequal sizes, enough steps to drift
    args = [cfg, '--splits', 'val', '--batch-size', '2', '--fit-options', 'num_steps=60', 'max_gaussians=1000']
    fit_gaussians.main(args)
    files = sorted((tmp_path / 'cache').rglob('*.ply'))
    uninterrupted = {f.name: f.read_bytes() for f in files}
    for lost in files:  # as if killed before writing it
        lost.unlink()
        resumed = fit_gaussians.main(args)
        assert (resumed['fitted'], resumed['cached_before']) == (1, 1)
        assert {f.name: f.read_bytes() for f in sorted((tmp_path / 'cache').rglob('*.ply'))} == uninterrupted


SCENE_FIT = ['--fit-options', 'mode=scene', 'scene_scale=0.1', 'num_steps=3', 'prune_opacity=0']


def test_scene_mode_fits_each_scene_once_and_cuts_its_objects(tmp_path):
    """The paper's mode: one fit of the sample scene serves its two objects; a lost cut is recut from the
    cached scene fit without refitting; the dataset's pipeline reads the cuts; the summary reports scenes."""
    cfg, cache = write_config(tmp_path)
    first = fit_gaussians.main([cfg, '--splits', 'val'] + SCENE_FIT)
    assert (first['objects'], first['fitted'], first['failed'], first['scenes_fitted']) == (2, 2, 0, 1)
    assert first['points_dropped'] == dict(nonfinite=0, behind_camera=0, outside_image=0, subsampled=0)
    assert first['gaussians_kept'] == 50000 and first['gaussians_pruned'] == 0
    assert len(list((tmp_path / 'cache').rglob('*.ply'))) == 3  # the scene and two cuts
    ds = build_dataset(cfg, pipeline=[])
    fitter = TRANSFORMS.build(dict(eval(FIT.format(cache=cache)), mode='scene', scene_scale=0.1, num_steps=3,
                                   prune_opacity=0))
    cut_file = fitter.cache.path(fitter.key(ds.get_data_info(0)))
    os.remove(cut_file)
    second = fit_gaussians.main([cfg, '--splits', 'val'] + SCENE_FIT)
    assert (second['fitted'], second['cached_before']) == (1, 1) and 'scenes_fitted' not in second
    # the pipeline's FitGaussians reads the cut; its Gaussians sit exactly at the object's points
    load = [TRANSFORMS.build(dict(type='LoadObjectPoints')), TRANSFORMS.build(dict(type='LoadObjectImage'))]
    for i in range(len(ds)):
        results = ds.get_data_info(i)
        for t in load:
            results = t(results)
        out = fitter(dict(results))
        np.testing.assert_array_equal(out['gaussians'][:, :3], results['points'][:, :3])
        assert out['fit_psnr'] == pytest.approx(first['psnr_mean'], abs=1e-4)


def test_scene_mode_transform_fits_a_missing_scene_once(tmp_path, monkeypatch):
    """Without the tool, the first object's transform fits the scene and caches it; the second object is cut
    from that cached fit (fitting again would raise here)."""
    cfg, cache = write_config(tmp_path)
    ds = build_dataset(cfg, pipeline=[])
    fitter = TRANSFORMS.build(dict(eval(FIT.format(cache=cache)), mode='scene', scene_scale=0.1, num_steps=2))
    load = [TRANSFORMS.build(dict(type='LoadObjectPoints')), TRANSFORMS.build(dict(type='LoadObjectImage'))]

    def run(i):
        results = ds.get_data_info(i)
        for t in load:
            results = t(results)
        return fitter(results)
    first = run(0)
    import gsclip_mm.gaussians.fitter as gf  # the service the transform fits through

    def no_fit(*a, **k):
        raise AssertionError('the scene was fitted twice')
    monkeypatch.setattr(gf, 'fit_batch', no_fit)
    second = run(1)
    assert first['fit_psnr'] == second['fit_psnr'] and len(first['gaussians']) and len(second['gaussians'])
    assert len(list((tmp_path / 'cache').rglob('*.ply'))) == 3
