"""Two-process training and testing through tools/dist_train.sh and tools/dist_test.sh (torchrun, MMEngine's
launcher; gloo on CPU)."""
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys

import pytest
import torch
from test_train_test import ROOT, TOY_CFG


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_script(args, cwd, timeout=300):
    """bash tools/<script> with this interpreter, a free port and one thread per process."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(_free_port()), OMP_NUM_THREADS='1',
               PYTHONPATH=osp.join(ROOT, 'tests', 'data'))
    return subprocess.run(['bash', *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp('dist_train')
    proc = run_script([osp.join(ROOT, 'tools', 'dist_train.sh'), TOY_CFG, '2', '--work-dir', str(work)], cwd=work)
    return work, proc.returncode, proc.stdout + proc.stderr


def test_two_process_training(trained):
    work, returncode, log = trained
    assert returncode == 0, log[-4000:]
    # 16 samples, batch 4 per rank, 2 ranks: each epoch is 2 iterations, so the
    # sampler really sharded the data across both processes.
    assert 'Epoch(train) [2][2/2]' in log and '[2][3/' not in log
    assert 'Distributed training: True' in log
    state = torch.load(work / 'epoch_2.pth')
    assert state['meta']['epoch'] == 2
    # DDP kept the two replicas equal; the saved model is a plain state dict.
    assert set(state['state_dict']) == {'linear.weight', 'linear.bias'}


def test_two_process_testing(trained, tmp_path):
    work, returncode, _ = trained
    assert returncode == 0
    out = tmp_path / 'preds.pkl'
    proc = run_script([osp.join(ROOT, 'tools', 'dist_test.sh'), TOY_CFG, str(work / 'epoch_2.pth'), '2',
                       '--work-dir', str(tmp_path), '--out', str(out)], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Distributed training: True' in log
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    # Each rank scored 8 of the 16 samples; rank 0 gathered and dumped all of them once, with the checkpoint's
    # predictions.
    from toy_components import ToyLinearDataset  # noqa: E402  (tests/data is on sys.path)
    state = torch.load(work / 'epoch_2.pth')['state_dict']
    w, b = state['linear.weight'][0], state['linear.bias'][0]
    ds = ToyLinearDataset(num=16)
    expected = sorted((float(ds.get_data_info(i)['data_samples']), float(w @ ds.get_data_info(i)['inputs'] + b))
                      for i in range(16))
    got = sorted((float(p['target']), float(p['pred'])) for p in preds)
    assert [t for t, _ in got] == [t for t, _ in expected]  # every sample once (targets identify them)
    assert [p for _, p in got] == pytest.approx([p for _, p in expected], abs=1e-5)


def test_cpu_slurm_launcher_is_refused_clearly():
    from mmengine.config import Config

    from gsclip_mm.utils import setup_cpu_distributed
    if torch.cuda.is_available():
        return
    cfg = Config(dict(launcher='slurm'))
    try:
        setup_cpu_distributed(cfg)
    except RuntimeError as e:
        assert 'torchrun' in str(e) and 'slurm' in str(e)
    else:
        raise AssertionError('slurm on CPU should be refused')
