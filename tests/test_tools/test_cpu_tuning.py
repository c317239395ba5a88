"""gsclip_mm/utils/cpu_tuning.py and the tools' start-up: the OpenMP wait policy is in the environment when torch
is first imported, an explicit setting wins, and the malloc tuning keeps large blocks off mmap."""
import ctypes
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest
from test_train_test import ROOT

CPU_TUNING = osp.join(ROOT, 'gsclip_mm', 'utils', 'cpu_tuning.py')

# Runs a tool as __main__ with --help and reports OMP_WAIT_POLICY at the moment anything first imports torch
# (then stops: nothing after that matters here).
SPY = '''
import os, runpy, sys

class TorchImportSpy:
    def find_spec(self, name, path=None, target=None):
        if name == 'torch':
            print('OMP_WAIT_POLICY when torch loads:', os.environ.get('OMP_WAIT_POLICY'), flush=True)
            os._exit(0)

sys.meta_path.insert(0, TorchImportSpy())
sys.argv = [sys.argv[1], '--help']
runpy.run_path(sys.argv[0], run_name='__main__')
print('torch was never imported')
'''


def python(code, *args, **env):
    base = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}
    proc = subprocess.run([sys.executable, '-c', code, *args], env=dict(base, **env), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


@pytest.mark.parametrize('tool', ['train.py', 'test.py', 'fit_gaussians.py'])
def test_tools_set_the_wait_policy_before_torch_loads(tool):
    assert python(SPY, osp.join(ROOT, 'tools', tool)) == 'OMP_WAIT_POLICY when torch loads: PASSIVE'


def test_an_explicit_wait_policy_wins():
    out = python(SPY, osp.join(ROOT, 'tools', 'train.py'), OMP_WAIT_POLICY='ACTIVE')
    assert out == 'OMP_WAIT_POLICY when torch loads: ACTIVE'


def load_cpu_tuning():
    spec = importlib.util.spec_from_file_location('cpu_tuning_under_test', CPU_TUNING)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_helper_runs_without_torch():
    """Loaded by its path as the tools do, it imports no torch and sets the policy."""
    code = ('import runpy, sys, os\n'
            f'applies = runpy.run_path({CPU_TUNING!r})["tune_cpu"]()\n'
            'print(applies, "torch" in sys.modules, os.environ.get("OMP_WAIT_POLICY"))')
    assert python(code) == 'True False PASSIVE'


def test_the_helper_says_when_torch_came_first(monkeypatch):
    import torch  # noqa: F401  (pytest has it already; said here for the reader)
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    with pytest.warns(UserWarning, match='after torch was imported'):
        assert load_cpu_tuning().tune_cpu() is False
    assert 'OMP_WAIT_POLICY' not in os.environ  # no claim the process does not honour


def test_set_omp_wait_policy_on_a_child_environment():
    cpu_tuning = load_cpu_tuning()
    env = {}
    assert cpu_tuning.set_omp_wait_policy(env) == 'PASSIVE' and env == {'OMP_WAIT_POLICY': 'PASSIVE'}
    env = {'OMP_WAIT_POLICY': 'ACTIVE'}
    assert cpu_tuning.set_omp_wait_policy(env) == 'ACTIVE' and env == {'OMP_WAIT_POLICY': 'ACTIVE'}


# Bytes glibc serves from mmap for one 16 MiB malloc, in a fresh process, with or without the tuning.
MMAPPED = '''
import ctypes, runpy, sys
if sys.argv[1] == 'tuned':
    assert runpy.run_path(sys.argv[2])['tune_glibc_malloc']()
libc = ctypes.CDLL('libc.so.6')
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
                                               'fsmblks', 'uordblks', 'fordblks', 'keepcost')]
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
before = libc.mallinfo2().hblkhd
block = libc.malloc(16 << 20)
print(libc.mallinfo2().hblkhd - before)
libc.free(ctypes.c_void_p(block))
'''


def test_malloc_tuning_keeps_large_blocks_in_the_heap():
    try:
        ctypes.CDLL('libc.so.6').mallinfo2
    except (OSError, AttributeError):
        pytest.skip('needs glibc >= 2.33 (mallinfo2)')
    assert int(python(MMAPPED, 'default', CPU_TUNING)) >= 16 << 20  # glibc's default: a fresh mmap
    assert int(python(MMAPPED, 'tuned', CPU_TUNING)) == 0  # under the raised threshold: from the heap
