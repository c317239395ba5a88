"""The restricted unpickler loads data pickles like pickle does and refuses any other global before calling it."""
import collections
import os
import pickle
import shlex
import struct
import subprocess
import sys

import numpy as np
import pytest
from deep_equal import assert_same  # tests/data

from gsclip_mm.utils import ForbiddenGlobalError, restricted_loads
from gsclip_mm.utils.safe_pickle import SAFE_DATA_GLOBALS

DATA = {
    'plain': {'a': [1, -2 ** 70, 2.5, 'x', None, True, (3, 4), b'raw', b'', 1 + 2j],
              'sets': [{5, 6}, frozenset({'f'})], 'ba': bytearray(b'ba')},
    'ordered_dict': collections.OrderedDict(b=1, a=2),
    'float32_array': np.arange(6, dtype=np.float32).reshape(2, 3),
    'fortran_array': np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    'empty_array': np.zeros((0, 7)),
    'scalars': [np.float64(1.5), np.int32(7), np.uint8(255), np.bool_(True), np.float16(0.5)],
    'strings': [np.array(['a', 'bc']), np.array([b'x', b'yz']), np.str_('s')],
    'object_array': np.array([1, 'a', None, [2.0]], dtype=object),
}


@pytest.mark.parametrize('protocol', [2, 4, 5])
@pytest.mark.parametrize('name', sorted(DATA))
def test_data_loads_like_pickle(name, protocol):
    obj = DATA[name]
    assert_same(restricted_loads(pickle.dumps(obj, protocol=protocol)), obj)


# --- payloads that run code when unpickled --------------------------------------------------------

def _touch_command(marker):
    return f'{shlex.quote(sys.executable)} -c "open({str(marker)!r}, \'w\').close()"'


class _OsSystem:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (_touch_command(self.marker), )


class _SubprocessCall(_OsSystem):
    def __reduce__(self):
        return subprocess.call, ([sys.executable, '-c', f"open({str(self.marker)!r}, 'w').close()"], )


class _Eval(_OsSystem):
    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').close()", )


class _Exec(_OsSystem):
    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()", )


class _Getattr(_OsSystem):
    """``getattr`` on an allowed object is a classic escape (``ndarray.tofile`` writes a file)."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


# payload class -> the global the refusal must name
PAYLOADS = {
    _OsSystem: f'{os.system.__module__}.system',  # posix.system on Linux
    _SubprocessCall: 'subprocess.call',
    _Eval: 'builtins.eval',
    _Exec: 'builtins.exec',
    _Getattr: 'builtins.getattr',
}


@pytest.mark.parametrize('payload', list(PAYLOADS), ids=lambda c: c.__name__)
def test_payloads_are_live_under_plain_pickle(payload, tmp_path):
    """Control: the payloads do run code with pickle.loads, so their refusal below means something."""
    marker = tmp_path / 'ran'
    out = pickle.loads(pickle.dumps(payload(marker), protocol=2))
    if payload is _Getattr:
        assert out == np.ndarray.tofile
    else:
        assert marker.exists()


@pytest.mark.parametrize('protocol', [0, 2, 5])
@pytest.mark.parametrize('payload', list(PAYLOADS), ids=lambda c: c.__name__)
def test_code_running_globals_are_refused_before_running(payload, protocol, tmp_path):
    marker = tmp_path / 'ran'
    data = pickle.dumps({'data_list': [{'x': payload(marker)}]}, protocol=protocol)
    with pytest.raises(ForbiddenGlobalError, match=f'refusing global {PAYLOADS[payload]}'.replace('.', r'\.')):
        restricted_loads(data)
    assert not marker.exists()


def test_object_array_cannot_smuggle_a_global(tmp_path):
    """An object array's items are unpickled by the same unpickler: the item's global is refused."""
    marker = tmp_path / 'ran'
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = 1.0, _OsSystem(marker)
    for protocol in (2, 5):
        with pytest.raises(ForbiddenGlobalError, match=PAYLOADS[_OsSystem].replace('.', r'\.')):
            restricted_loads(pickle.dumps(arr, protocol=protocol))
    assert not marker.exists()


def test_inst_opcode_is_refused(tmp_path):
    """Protocol 0's INST (class + args in one opcode, no REDUCE) goes through the same gate."""
    marker = tmp_path / 'ran'
    data = b'(V' + _touch_command(marker).encode() + b'\nios\nsystem\n.'
    with pytest.raises(ForbiddenGlobalError, match=r'os\.system'):
        restricted_loads(data)
    assert not marker.exists()


def _unicode(text):
    raw = text.encode()
    return pickle.BINUNICODE + struct.pack('<I', len(raw)) + raw


def test_codecs_encode_only_latin1():
    """``_codecs.encode`` is allowed for protocol-2 bytes only, not as a general codec gadget."""
    ok = b'\x80\x02c_codecs\nencode\n' + _unicode('ab') + _unicode('latin1') + pickle.TUPLE2 + pickle.REDUCE + b'.'
    assert restricted_loads(ok) == b'ab'
    bad = ok.replace(_unicode('latin1'), _unicode('rot13'))
    with pytest.raises(ForbiddenGlobalError, match='rot13'):
        restricted_loads(bad)


def test_build_on_an_allowed_function_does_not_leak():
    """A pickle may set attributes on what it gets (BUILD slot state); numpy's own function must not change."""
    from numpy._core.numeric import _frombuffer
    data = (b'\x80\x02cnumpy._core.numeric\n_frombuffer\n' + pickle.NONE + pickle.EMPTY_DICT + _unicode('__module__')
            + _unicode('evil') + pickle.SETITEM + pickle.TUPLE2 + pickle.BUILD + b'.')
    try:
        restricted_loads(data)
    except TypeError:  # the throwaway wrapper may refuse the state; what matters is numpy's function
        pass
    assert _frombuffer.__module__ == 'numpy._core.numeric'


def test_allow_list_names_both_numpy_spellings():
    """Files written under numpy 1.x name numpy.core.*, under numpy 2 numpy._core.*: both resolve."""
    for module, name in [('multiarray', '_reconstruct'), ('multiarray', 'scalar'), ('numeric', '_frombuffer')]:
        assert SAFE_DATA_GLOBALS[(f'numpy.core.{module}', name)] is SAFE_DATA_GLOBALS[(f'numpy._core.{module}', name)]
