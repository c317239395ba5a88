import os.path as osp
import sys

import pytest

# The toy components of the tools' tests are imported by name from configs.
sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), 'data'))


@pytest.fixture(autouse=True)
def one_thread():
    """Tests use tiny problems: one torch thread avoids OpenMP barrier waits on small shared CPUs."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
