"""load_infos: real infos load as with mmengine.load, crafted pickles are refused, every error names the file."""
import io
import json
import os
import os.path as osp
import pickle
import pickletools

import mmengine
import numpy as np
import pytest
from deep_equal import assert_same  # tests/data

from gsclip_mm.datasets.utils import InfosError, load_infos
from gsclip_mm.registry import DATASETS
from gsclip_mm.utils import ForbiddenGlobalError

# The real scene 000017 that the dataset tests use (mmdetection3d's infos format, protocol 2).
SAMPLE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'sunrgbd_sample')
SAMPLE_INFOS = osp.join(SAMPLE, 'sunrgbd_infos_val.pkl')


def test_real_infos_load_like_mmengine():
    infos = load_infos(SAMPLE_INFOS)
    assert_same(infos, mmengine.load(SAMPLE_INFOS))
    cam = infos['data_list'][0]['images']['CAM0']
    assert type(cam['height']) is np.int32 and cam['height'] == 530  # a numpy scalar went through the allow-list


class _RunsShell:
    """Unpickling runs ``touch <marker>`` through os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def crafted_infos(tmp_path, protocol=2):
    """A valid-looking infos pkl whose first instance would create ``tmp_path/ran`` when unpickled."""
    infos = mmengine.load(SAMPLE_INFOS)
    infos['data_list'][0]['instances'][0]['bbox_3d'] = _RunsShell(tmp_path / 'ran')
    path = tmp_path / 'sunrgbd_infos_crafted.pkl'
    path.write_bytes(pickle.dumps(infos, protocol=protocol))
    return str(path)


@pytest.mark.parametrize('protocol', [2, 5])
def test_crafted_pkl_is_refused_and_nothing_runs(tmp_path, protocol):
    path = crafted_infos(tmp_path, protocol)
    with pytest.raises(ForbiddenGlobalError) as info:
        load_infos(path)
    assert path in str(info.value) and f'{os.system.__module__}.system' in str(info.value)
    assert isinstance(info.value, pickle.UnpicklingError)
    assert not (tmp_path / 'ran').exists()


def test_dataset_refuses_crafted_infos(tmp_path):
    path = crafted_infos(tmp_path)
    with pytest.raises(ForbiddenGlobalError, match='sunrgbd_infos_crafted.pkl'):
        DATASETS.build(dict(type='SUNRGBDObjectDataset', ann_file=path, data_root=SAMPLE))
    assert not (tmp_path / 'ran').exists()


def _broken_files():
    good = open(SAMPLE_INFOS, 'rb').read()
    return {  # kind -> (bytes, what pickle says about them)
        'truncated': (good[:len(good) // 2], 'pickle data was truncated'),
        'empty': (b'', 'Ran out of input'),
        'no_mark': (b'\x80\x02t.', 'could not find MARK'),  # TUPLE without MARK
        'garbage': (bytes(range(200, 256)) * 4, 'invalid load key'),
        'json_under_pkl': (json.dumps({'data_list': []}).encode(), 'invalid load key'),
    }


@pytest.mark.parametrize('kind', sorted(_broken_files()))
def test_broken_pkl_names_the_file(tmp_path, kind):
    data, reason = _broken_files()[kind]
    path = tmp_path / f'{kind}.pkl'
    path.write_bytes(data)
    with pytest.raises(InfosError) as info:
        load_infos(str(path))
    assert str(path) in str(info.value) and reason in str(info.value)
    assert isinstance(info.value, ValueError) and info.value.__cause__ is not None  # decoder's error chained


def test_dataset_names_a_truncated_infos(tmp_path):
    path = tmp_path / 'truncated.pkl'
    path.write_bytes(open(SAMPLE_INFOS, 'rb').read()[:100])
    with pytest.raises(InfosError, match='truncated.pkl'):
        DATASETS.build(dict(type='SUNRGBDObjectDataset', ann_file=str(path), data_root=SAMPLE))


def test_missing_and_unreadable_files_name_the_file(tmp_path):
    missing = str(tmp_path / 'nope.pkl')
    with pytest.raises(FileNotFoundError, match='nope.pkl'):
        load_infos(missing)
    folder = tmp_path / 'folder.pkl'
    folder.mkdir()
    with pytest.raises(OSError, match='folder.pkl'):
        load_infos(str(folder))


def test_unsupported_suffix_names_the_file(tmp_path):
    path = tmp_path / 'infos.npy'
    path.write_bytes(b'\x93NUMPY')
    with pytest.raises(InfosError, match='infos.npy'):
        load_infos(str(path))


@pytest.mark.parametrize('suffix', ['.json', '.yaml'])
def test_json_and_yaml_load_with_mmengine(tmp_path, suffix):
    infos = {'metainfo': {'classes': ['bed', 'chair']}, 'data_list': [{'sample_idx': 3, 'bbox': [1.5, 2.0]}]}
    path = str(tmp_path / f'infos{suffix}')
    mmengine.dump(infos, path)
    assert load_infos(path) == infos
    broken = tmp_path / f'broken{suffix}'
    broken.write_text('{"data_list": [' if suffix == '.json' else 'a: [1, 2\nb: {')
    with pytest.raises(InfosError, match=f'broken{suffix}'):
        load_infos(str(broken))


def test_yaml_python_tags_are_refused(tmp_path):
    """mmengine's own yaml loader runs `!!python/object/apply` (control below); load_infos must not."""
    marker = tmp_path / 'ran'
    text = f'data_list: !!python/object/apply:os.system ["touch {marker}"]\n'
    mmengine.load(io.StringIO(text), file_format='yaml')
    assert marker.exists()  # control: the payload is live
    marker.unlink()
    path = tmp_path / 'crafted.yaml'
    path.write_text(text)
    with pytest.raises(InfosError, match='crafted.yaml'):
        load_infos(str(path))
    assert not marker.exists()


def numpy1_style(data: bytes) -> bytes:
    """Rename numpy 2's ``numpy._core.*`` globals to numpy 1.x's ``numpy.core.*``, as a file written under
    numpy 1.x names them; re-framed so that protocol >= 4 stays valid."""
    for sub in ('multiarray', 'numeric'):
        new, old = f'numpy._core.{sub}'.encode(), f'numpy.core.{sub}'.encode()
        data = data.replace(b'c' + new + b'\n', b'c' + old + b'\n')  # protocol 2: GLOBAL 'module\nname\n'
        # protocol >= 4: SHORT_BINUNICODE <1-byte length> module
        data = data.replace(b'\x8c' + bytes([len(new)]) + new, b'\x8c' + bytes([len(old)]) + old)
    return pickletools.optimize(data)


@pytest.mark.parametrize('protocol', [2, 4, 5])
def test_numpy1_style_float_arrays_load(tmp_path, protocol):
    infos = {'data_list': [{'calib': {'K': np.arange(9, dtype=np.float64).reshape(3, 3) / 7,
                                      'Rt': np.eye(3, dtype=np.float32)},
                            'annos': {'gt_boxes_upright_depth': np.zeros((0, 7), dtype=np.float32),
                                      'gt_num': np.int64(0), 'score': np.float32(0.25)}}]}
    data = numpy1_style(pickle.dumps(infos, protocol=protocol))
    assert b'numpy.core.' in data and b'numpy._core' not in data  # the rewrite did happen
    path = tmp_path / 'infos_np1.pkl'
    path.write_bytes(data)
    assert_same(load_infos(str(path)), infos)
