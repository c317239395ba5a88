"""Unpickle data files (mmdetection3d's infos) without running code from them.

A pickle names every callable it needs as ``module.name`` and the unpickler
calls it, so ``pickle.load`` of a crafted file runs ``os.system`` or ``eval``.
:class:`RestrictedUnpickler` resolves only the names of
:data:`SAFE_DATA_GLOBALS` and refuses any other with
:class:`ForbiddenGlobalError` before anything is called. Allowed is what data
needs: numpy arrays and scalars (the numpy list of the checkpoint allow-list
in :mod:`gsclip_mm.utils.checkpoint`, plus ``_frombuffer`` for protocol 5),
``collections.OrderedDict``, the builtin types that old protocols rebuild by
calling them (``set``, ``frozenset``, ``bytearray``, ``complex``) and
stand-ins for the two calls with which protocol-2 pickles spell ``bytes``.
Other plain containers, numbers and strings need no global.

Every opcode that names a global (``GLOBAL``, ``STACK_GLOBAL``, ``INST``; the
``EXT`` codes too, unless the process registered ``copyreg`` extensions, which
nothing here does) goes through ``find_class``, and the items of a numpy
object array are unpickled by the same unpickler, so an object array cannot
smuggle a refused global either.
"""
import _compat_pickle
import functools
import io
import pickle
import types
from collections import OrderedDict
from typing import Dict, List, Tuple

from .checkpoint import _numpy_globals  # one numpy list for checkpoints and data files


class ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle names a global (class or function) outside :data:`SAFE_DATA_GLOBALS`."""


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """Stand-in for ``_codecs.encode``: protocol-2 pickles spell ``b'..'`` as ``encode('..', 'latin1')``.

    Only that use is allowed: other codecs are not needed by data files.
    """
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise ForbiddenGlobalError(f'refusing _codecs.encode({type(text).__name__}, {encoding!r}): only '
                                   f"encode(<str>, 'latin1') (protocol-2 bytes) is allowed")
    return text.encode('latin1')


def _empty_bytes() -> bytes:
    """Stand-in for ``bytes()``: protocol-2 pickles spell ``b''`` (an empty array's data) that way."""
    return b''


def _numpy_frombuffer():
    """numpy's ``_frombuffer``: protocol-5 pickles rebuild contiguous arrays with it."""
    try:  # numpy >= 2 moved it to numpy._core
        from numpy._core.numeric import _frombuffer as fn
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.numeric import _frombuffer as fn
    return fn


def _module_spellings(module: str) -> List[str]:
    """The module names a pickle may use for ``module``: files written under numpy 1.x say
    ``numpy.core.*`` where numpy 2 says ``numpy._core.*`` (and the reverse)."""
    for prefix, other in (('numpy._core', 'numpy.core'), ('numpy.core', 'numpy._core')):
        if module == prefix or module.startswith(prefix + '.'):
            return [module, other + module[len(prefix):]]
    return [module]


def _build_safe_globals() -> Dict[Tuple[str, str], object]:
    """``(module, name) -> object`` for every global a data pickle may name."""
    table = {}
    for obj in [*_numpy_globals(), _numpy_frombuffer(), OrderedDict]:
        for module in _module_spellings(obj.__module__):
            table[(module, obj.__qualname__)] = obj
    table[('_codecs', 'encode')] = _latin1_bytes
    table[('builtins', 'bytes')] = _empty_bytes
    # Plain containers / numbers that protocols < 4 (complex: every protocol) build by calling their type.
    for typ in (set, frozenset, bytearray, complex):
        table[('builtins', typ.__name__)] = typ
    return table


def _python3_name(module: str, name: str) -> Tuple[str, str]:
    """Undo ``fix_imports``: Python 3 writes Python 2's names (``__builtin__``, ``commands``) into
    protocol < 3 pickles; map them back with the table ``pickle`` itself uses. Python 3 has no
    modules of those names, so mapping every protocol is harmless."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


#: The only globals :class:`RestrictedUnpickler` resolves, keyed by the ``(module, name)`` a pickle names.
SAFE_DATA_GLOBALS: Dict[Tuple[str, str], object] = _build_safe_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only :data:`SAFE_DATA_GLOBALS`."""

    def find_class(self, module: str, name: str) -> object:
        module, name = _python3_name(module, name)
        obj = SAFE_DATA_GLOBALS.get((module, name))
        if obj is None:
            raise ForbiddenGlobalError(
                f'refusing global {module}.{name}: a data pickle may only hold plain containers, numbers, '
                f'strings, numpy arrays / scalars and OrderedDict')
        # A pickle can set attributes on what it gets (BUILD): hand out a fresh wrapper of a Python
        # function so that this cannot change the shared function for later loads. The other
        # entries (builtin functions, immutable types) refuse attribute writes themselves.
        return functools.partial(obj) if isinstance(obj, types.FunctionType) else obj


def restricted_loads(data: bytes) -> object:
    """``pickle.loads`` through :class:`RestrictedUnpickler`.

    Raises:
        ForbiddenGlobalError: the pickle names a global outside :data:`SAFE_DATA_GLOBALS`.
        pickle.UnpicklingError, EOFError, ValueError, ...: whatever ``pickle`` raises for a
            truncated or corrupt stream.
    """
    return RestrictedUnpickler(io.BytesIO(data)).load()
