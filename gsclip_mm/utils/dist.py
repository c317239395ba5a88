"""Distributed launch on CPUs with MMEngine's Runner.

MMEngine 0.10.7's ``init_dist`` always calls ``torch.cuda.set_device``, and its
default DDP wrapper passes ``device_ids=[LOCAL_RANK]``: both fail on a machine
without a GPU. On such a machine we open the gloo process group ourselves from
torchrun's environment (the Runner then sees an initialised group and skips its
own ``init_dist``) and ask for a DDP wrapper without device ids. Everything
else (DDP wrapping, sampler sharding, rank-aware hooks and logging) stays
MMEngine's. On GPUs nothing changes: MMEngine's launcher with NCCL.
"""
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def init_gloo_from_torchrun() -> None:
    """Open a gloo process group from torchrun's environment (once)."""
    if torch_dist.is_initialized():
        return
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher pytorch expects torchrun to set {missing}; start with torchrun')
    torch_dist.init_process_group(backend='gloo')


def setup_cpu_distributed(cfg: Config) -> Config:
    """Prepare ``cfg`` (and the process group) for a CPU-only distributed run.

    A no-op when ``cfg.launcher`` is ``'none'`` or CUDA is available.

    Raises:
        RuntimeError: for the ``slurm`` / ``mpi`` launchers without CUDA.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return cfg
    if launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} needs CUDA (MMEngine sets a CUDA device for it); '
            'on CPUs start the job with torchrun and --launcher pytorch instead')
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    init_gloo_from_torchrun()
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel', broadcast_buffers=False)
    wrapper['device_ids'] = None  # DDP over CPU modules takes no device ids
    cfg.model_wrapper_cfg = wrapper
    return cfg


def teardown_distributed() -> None:
    """Close the process group before exit.

    Without this, gloo's threads may still be running when the interpreter
    exits, and the process aborts ("terminate called without an active
    exception") after a successful run.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
