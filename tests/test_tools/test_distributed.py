"""Two-process training with torchrun and MMEngine's launcher (gloo on CPU)."""
import os.path as osp
import socket

import torch

from test_train_test import ROOT, TOY_CFG, run_tool


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_training(tmp_path):
    proc = run_tool([
        '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_addr=127.0.0.1',
        f'--master_port={_free_port()}',
        osp.join(ROOT, 'tools', 'train.py'), TOY_CFG, '--launcher', 'pytorch', '--work-dir', str(tmp_path)
    ], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # 16 samples, batch 4 per rank, 2 ranks: each epoch is 2 iterations, so the
    # sampler really sharded the data across both processes.
    assert 'Epoch(train) [2][2/2]' in log and '[2][3/' not in log
    assert 'Distributed training: True' in log
    state = torch.load(tmp_path / 'epoch_2.pth')
    assert state['meta']['epoch'] == 2
    # DDP kept the two replicas equal; the saved model is a plain state dict.
    assert set(state['state_dict']) == {'linear.weight', 'linear.bias'}


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
