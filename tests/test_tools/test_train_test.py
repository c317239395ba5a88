"""tools/train.py and tools/test.py end to end on a tiny toy config (CPU).

The toy model (``tests/data/toy_components.py``) keeps these tests fast; the
GS-CLIP model's own end-to-end run is in ``test_gsclip_e2e.py``.
"""
import os
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch

import gsclip_mm  # noqa: F401  (allow-lists MMEngine's checkpoint types)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY_CFG = osp.join(ROOT, 'tests', 'data', 'toy_config.py')


def run_tool(args, cwd, timeout=300):
    env = dict(os.environ, PYTHONPATH=osp.join(ROOT, 'tests', 'data'), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp('toy_train')
    proc = run_tool([osp.join(ROOT, 'tools', 'train.py'), TOY_CFG, '--work-dir', str(work)], cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


def test_train_writes_loadable_checkpoint(trained):
    ckpt = trained / 'epoch_2.pth'
    assert ckpt.is_file()
    # The default torch.load (weights_only=True) reads MMEngine's checkpoint.
    state = torch.load(ckpt)
    assert state['meta']['epoch'] == 2
    assert set(state['state_dict']) == {'linear.weight', 'linear.bias'}
    assert 'train/loss' in state['message_hub']['log_scalars']


def test_resume_continues_from_last_epoch(trained):
    proc = run_tool([osp.join(ROOT, 'tools', 'train.py'), TOY_CFG, '--work-dir', str(trained), '--resume',
                     '--cfg-options', 'train_cfg.max_epochs=3'], cwd=trained)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 2, iter: 8' in log
    # Resumed training ran epoch 3 only (16 samples / batch 4 = 4 iterations).
    assert 'Epoch(train) [3][4/4]' in log and 'Epoch(train) [1]' not in log
    assert torch.load(trained / 'epoch_3.pth')['meta']['epoch'] == 3


def test_resume_from_explicit_path(trained, tmp_path):
    proc = run_tool([osp.join(ROOT, 'tools', 'train.py'), TOY_CFG, '--work-dir', str(tmp_path), '--resume',
                     str(trained / 'epoch_1.pth')], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed epoch: 1, iter: 4' in proc.stdout + proc.stderr
    assert (tmp_path / 'epoch_2.pth').is_file() and not (tmp_path / 'epoch_1.pth').exists()


def test_test_tool_loads_checkpoint_and_dumps(trained, tmp_path):
    out = tmp_path / 'preds.pkl'
    proc = run_tool([osp.join(ROOT, 'tools', 'test.py'), TOY_CFG, str(trained / 'epoch_2.pth'), '--work-dir',
                     str(tmp_path), '--out', str(out)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Load checkpoint from' in proc.stdout + proc.stderr
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 16
    # The dumped predictions are those of the loaded weights, not of a fresh init.
    state = torch.load(trained / 'epoch_2.pth')['state_dict']
    x = torch.stack([p['target'] for p in preds])  # targets only identify the samples
    assert x.shape == (16, )
    w, b = state['linear.weight'][0], state['linear.bias'][0]
    from toy_components import ToyLinearDataset  # noqa: E402  (on PYTHONPATH via conftest)
    ds = ToyLinearDataset(num=16)
    expected = sorted(float(w @ ds.get_data_info(i)['inputs'] + b) for i in range(16))
    got = sorted(float(p['pred']) for p in preds)
    assert got == pytest.approx(expected, abs=1e-5)


def test_amp_flag_switches_optim_wrapper():
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import train as train_tool
    finally:
        sys.path.pop(0)
    from mmengine.config import Config
    cfg = Config.fromfile(TOY_CFG)
    args = train_tool.argparse.Namespace(
        launcher='none', work_dir='w', amp=True, resume=None, no_validate=False, auto_scale_lr=False,
        cfg_options={'optim_wrapper.optimizer.lr': 0.5}, config=TOY_CFG)
    cfg = train_tool.merge_args(cfg, args)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.optim_wrapper.optimizer.lr == 0.5  # --cfg-options applied last
    assert cfg.work_dir == 'w'


def test_auto_scale_lr_flag_scales_the_lr_by_the_total_batch(tmp_path):
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import train as train_tool
    finally:
        sys.path.pop(0)
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(TOY_CFG)
    cfg.auto_scale_lr = dict(base_batch_size=2)  # the toy trains with batch 4 in one process: lr x 2
    args = train_tool.argparse.Namespace(launcher='none', work_dir=str(tmp_path), amp=False, resume=None,
                                         no_validate=False, auto_scale_lr=True, cfg_options=None, config=TOY_CFG)
    cfg = train_tool.merge_args(cfg, args)
    assert cfg.auto_scale_lr.enable
    runner = Runner.from_cfg(cfg)
    optim_wrapper = runner.build_optim_wrapper(cfg.optim_wrapper)
    runner.scale_lr(optim_wrapper, cfg.auto_scale_lr)
    assert optim_wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(2 * 0.05)
    # a config without a base batch cannot be scaled: said, not ignored
    cfg2 = Config.fromfile(TOY_CFG)
    cfg2.pop('auto_scale_lr', None)
    with pytest.raises(ValueError, match='base_batch_size'):
        train_tool.merge_args(cfg2, args)


def test_test_tool_refuses_malicious_checkpoint(tmp_path):
    sentinel = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, meta={'payload': _RunsShell(str(sentinel))}), evil)
    proc = run_tool([osp.join(ROOT, 'tools', 'test.py'), TOY_CFG, str(evil), '--work-dir', str(tmp_path)],
                    cwd=tmp_path)
    assert proc.returncode != 0
    assert 'Weights only load failed' in proc.stderr and 'system' in proc.stderr
    assert not sentinel.exists()


class _RunsShell:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f'touch {self.path}', ))


def edited_checkpoint(trained, tmp_path, add=None, drop=None):
    ckpt = torch.load(trained / 'epoch_2.pth')
    ckpt['state_dict'].update(add or {})
    for k in drop or ():
        del ckpt['state_dict'][k]
    path = tmp_path / 'edited.pth'
    torch.save(ckpt, path)
    return path


def test_test_tool_refuses_a_checkpoint_of_another_model(trained, tmp_path):
    # e.g. a GAF checkpoint under the no-GAF config: keys the model lacks
    ckpt = edited_checkpoint(trained, tmp_path, add={'gaf.proj.weight': torch.zeros(2, 2)})
    proc = run_tool([osp.join(ROOT, 'tools', 'test.py'), TOY_CFG, str(ckpt), '--work-dir', str(tmp_path)],
                    cwd=tmp_path)
    assert proc.returncode != 0
    assert 'unexpected key in source state_dict: gaf.proj.weight' in proc.stderr
    assert f'checkpoint {ckpt} does not fit the model of {TOY_CFG}' in proc.stderr and '--non-strict' in proc.stderr
    assert 'toy/mse' not in proc.stdout + proc.stderr  # nothing was scored
    proc = run_tool([osp.join(ROOT, 'tools', 'test.py'), TOY_CFG, str(ckpt), '--work-dir', str(tmp_path),
                     '--non-strict'], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'toy/mse' in proc.stdout + proc.stderr


def test_test_tool_refuses_a_checkpoint_missing_weights(trained, tmp_path):
    ckpt = edited_checkpoint(trained, tmp_path, drop=['linear.bias'])
    proc = run_tool([osp.join(ROOT, 'tools', 'test.py'), TOY_CFG, str(ckpt), '--work-dir', str(tmp_path)],
                    cwd=tmp_path)
    assert proc.returncode != 0 and 'missing keys in source state_dict: linear.bias' in proc.stderr
