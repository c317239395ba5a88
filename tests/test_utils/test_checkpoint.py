"""MMEngine checkpoints load under torch's weights_only default; nothing else does."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from gsclip_mm.utils import register_checkpoint_safe_globals


class _RunsShell:
    """A pickle payload that would run a shell command when loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f'touch {self.path}', ))


class _GetattrGadget:
    """A pickle payload reaching a non-statistics attribute through getattr."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, 'update'))


def test_message_hub_state_round_trips(tmp_path):
    register_checkpoint_safe_globals()
    hub = MessageHub.get_instance('ckpt_test')
    hub.update_scalar('train/loss', np.float64(0.25))
    hub.update_scalar('train/loss', 0.75)
    hub.update_info('eta', np.float64(3.5))
    path = tmp_path / 'ckpt.pth'
    torch.save(dict(message_hub=hub.state_dict(), state_dict={'w': torch.ones(2)}), path)
    loaded = torch.load(path)  # weights_only=True, the torch >= 2.6 default
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx(0.5)
    assert buf.statistics('min') == pytest.approx(0.25)
    assert loaded['message_hub']['runtime_info']['eta'] == 3.5


def test_registration_is_idempotent():
    register_checkpoint_safe_globals()
    n = len(torch.serialization.get_safe_globals())
    register_checkpoint_safe_globals()
    assert len(torch.serialization.get_safe_globals()) == n


def test_code_running_checkpoint_is_refused(tmp_path):
    register_checkpoint_safe_globals()
    sentinel = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, meta=_RunsShell(sentinel)), path)
    with pytest.raises(pickle.UnpicklingError, match='system'):
        torch.load(path)
    assert not sentinel.exists()


def test_getattr_is_limited_to_history_buffer_statistics(tmp_path):
    register_checkpoint_safe_globals()
    path = tmp_path / 'gadget.pth'
    torch.save(dict(meta=_GetattrGadget()), path)
    with pytest.raises(pickle.UnpicklingError, match="refusing getattr.*'update'"):
        torch.load(path)
