"""tools/fit_gaussians.py (resume, corrupt cache, failures), tools/visualize_fit.py, tools/benchmark_fitting.py."""
import json
import os.path as osp
import pickle
import sys

import mmcv
import numpy as np
import pytest

from gsclip_mm.gaussians import GaussianCache

TOOLS = osp.join(osp.dirname(__file__), '..', '..', 'tools')
sys.path.insert(0, osp.abspath(TOOLS))
import benchmark_fitting  # noqa: E402
import fit_gaussians  # noqa: E402
import visualize_fit  # noqa: E402

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
    # night stand box: x 54.9..187.0 -> 55..188 (133 px), y 233.1..360.7 -> 233..361 (128 px)
    assert png.shape == (round(40 * 128 / 133), 3 * 40 + 8, 3)
    render, target = png[:, 88:].astype(float), png[:, 44:84].astype(float)
    assert (render.max(-1) > 3).mean() > 0.3  # the Gaussians cover much of the box
    assert abs(render.mean() - target.mean()) < 0.5 * target.mean()  # with about the right brightness


def test_benchmark_worker():
    row = benchmark_fitting.worker(dict(threads=1, gaussians=40, resolution=12, batch=2, steps=2, fit_steps=500,
                                        backend='tiles'))
    assert row['ms_per_step'] > 0 and row['peak_rss_mb'] > 10 and 0 < row['psnr'] < 60
    assert row['objects_per_s'] == pytest.approx(2 / (row['ms_per_step'] / 1000 * 500))


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
                          osp.join(TOOLS, 'fit_gaussians.py'), cfg, '--launcher', 'pytorch', '--splits', 'val'],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'rank 0/2 fits 1' in out.stdout + out.stderr
    summary = json.load(open(osp.join(cache, 'fit_summary.json')))
    assert (summary['objects'], summary['fitted'], summary['failed']) == (2, 2, 0)
    assert len(list((tmp_path / 'cache').rglob('*.ply'))) == 2
