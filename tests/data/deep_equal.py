"""A deep equality assertion for unpickled data (shared by the infos and pickle tests)."""
import numpy as np


def assert_same(a, b, where='obj'):
    """Deep equality that also checks types (and dtypes / shapes of arrays)."""
    assert type(a) is type(b), f'{where}: {type(a)} != {type(b)}'
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f'{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}'
        assert a.flags.f_contiguous == b.flags.f_contiguous, f'{where}: memory order differs'
        if a.dtype == object:
            for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())):
                assert_same(x, y, f'{where}[{i}]')
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), f'{where}: keys {list(a)} != {list(b)}'
        for k in a:
            assert_same(a[k], b[k], f'{where}[{k!r}]')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f'{where}: length {len(a)} != {len(b)}'
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'
