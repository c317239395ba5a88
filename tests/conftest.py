import os
import os.path as osp
import sys

import pytest

# The toy components of the tools' tests are imported by name from configs.
sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), 'data'))


# Test files whose every test compares floats computed by different kernels (tiles vs dense, batched vs
# separate, fast ops vs references); tests elsewhere may carry @pytest.mark.numerics themselves.
NUMERICS_FILES = ('test_gaussians/test_rasterize.py', 'test_gaussians/test_rasterize_fused.py',
                  'test_gaussians/test_fitting.py',
                  'test_gaussians/test_metrics.py', 'test_ops/test_point_ops.py', 'test_models/test_backbones.py')


def pytest_configure(config):
    config.addinivalue_line('markers', 'numerics: float results that depend on SIMD width and thread count; '
                            '`make test` runs them again under GSCLIP_TEST_THREADS=2')


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.path).replace(os.sep, '/').endswith(NUMERICS_FILES):
            item.add_marker(pytest.mark.numerics)


@pytest.fixture(autouse=True)
def torch_threads():
    """One torch thread by default (tiny problems; no OpenMP barrier waits on small shared CPUs).

    ``GSCLIP_TEST_THREADS=N`` runs the tests with N threads instead, which changes how kernels split
    their work and so their round-off: the numerics tests must hold either way.
    """
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get('GSCLIP_TEST_THREADS', '1')))
    yield
    torch.set_num_threads(before)
