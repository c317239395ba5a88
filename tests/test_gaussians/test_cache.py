import hashlib
import os

import numpy as np
import pytest

from gsclip_mm.gaussians import FitSettings, GaussianCache, cache_key, file_sha256, points_sha256
from gsclip_mm.utils import atomic_write


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.random((20, 6), dtype=np.float32)
    img = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    return pts, img, np.eye(3) * [50, 50, 1] + [[0, 0, 20], [0, 0, 15], [0, 0, 0]], np.array([5, 6, 25, 20.5])


def gaussians(n=20):
    g = np.zeros((n, 14), np.float32)
    g[:, :3] = np.arange(n * 3).reshape(n, 3)
    g[:, 3:6], g[:, 6], g[:, 7:10], g[:, 10] = 0.25, 0.5, 0.01, 1.0
    return g


def test_key_changes_with_every_input_and_setting():
    pts, _, cam, box = inputs()
    img_sha, pts_sha = 'a' * 64, points_sha256(pts)
    s = FitSettings().to_dict()
    base = cache_key(img_sha, pts_sha, cam, box, s)
    assert base == cache_key(img_sha, points_sha256(pts.copy()), cam.copy(), list(box), dict(s))
    pts2 = pts.copy()
    pts2[3, 0] += 1e-3
    others = [cache_key(img_sha, points_sha256(pts2), cam, box, s), cache_key('b' * 64, pts_sha, cam, box, s),
              cache_key(img_sha, pts_sha, cam * 1.01, box, s), cache_key(img_sha, pts_sha, cam, box + 1, s),
              cache_key(img_sha, points_sha256(pts[:-1]), cam, box, s)]
    others += [cache_key(img_sha, pts_sha, cam, box, dict(s, **{k: v})) for k, v in
               dict(num_steps=499, resolution=32, lr_rgb=0.1, background=(1, 1, 1), seed=1).items()]
    assert len(set(others + [base])) == len(others) + 1


def test_file_hash_is_of_the_bytes(tmp_path):
    """The image enters the key as its file's bytes: what a decoder makes of them cannot change it."""
    path = tmp_path / 'x.jpg'
    path.write_bytes(b'not even a jpeg')
    assert file_sha256(str(path)) == hashlib.sha256(b'not even a jpeg').hexdigest()
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        file_sha256(str(tmp_path / 'missing.jpg'))


def test_failure_record(tmp_path):
    cache = GaussianCache(str(tmp_path))
    assert cache.failures() == {}
    cache.update_failures({'k1': dict(object='a#0', reason='FitInputError: x'),
                           'k2': dict(object='a#1', reason='FitInputError: y')}, fitted=[])
    record = cache.update_failures({'k3': dict(object='b#0', reason='ObjectError: z')}, fitted=['k1'])
    assert sorted(record) == ['k2', 'k3'] and GaussianCache(str(tmp_path)).failures() == record
    (tmp_path / 'fit_failures.json').write_text('[1, 2]')
    with pytest.raises(ValueError, match='fit_failures.json'):
        cache.failures()


def test_roundtrip_and_layout(tmp_path):
    cache = GaussianCache(str(tmp_path))
    key = 'ab' + '0' * 62
    path = cache.save(key, gaussians(), dict(psnr=31.0))
    assert path == str(tmp_path / 'ab' / (key + '.ply'))
    g, meta = cache.load(key)
    np.testing.assert_allclose(g, gaussians(), rtol=1e-5, atol=1e-6)
    assert meta['psnr'] == 31.0 and meta['num'] == 20
    assert cache.load('cd' + '0' * 62) is None and cache.corrupt == 0


@pytest.mark.parametrize('damage', ['truncate', 'flip', 'garbage', 'other_key'])
def test_corrupt_file_is_detected(tmp_path, damage):
    cache = GaussianCache(str(tmp_path))
    key = 'ef' + '1' * 62
    path = cache.save(key, gaussians())
    data = open(path, 'rb').read()
    if damage == 'truncate':
        data = data[:len(data) // 2]
    elif damage == 'flip':
        data = data[:-9] + bytes([data[-9] ^ 0x40]) + data[-8:]  # same size, checksum differs
    elif damage == 'garbage':
        data = b'\x00' * 100
    else:
        cache.save('ef' + '2' * 62, gaussians())
        data = open(cache.path('ef' + '2' * 62), 'rb').read()
    open(path, 'wb').write(data)
    assert cache.load(key) is None
    assert cache.corrupt == 1


HEADER_DAMAGE = {
    'vertex_without_count': (b'element vertex 20\n', b'element vertex\n'),  # was IndexError
    'property_without_name': (b'property float x\n', b'property float\n'),  # was IndexError
    'bare_property': (b'property float y\n', b'property\n'),
    'count_not_a_number': (b'element vertex 20\n', b'element vertex twenty\n'),
    'negative_count': (b'element vertex 20\n', b'element vertex -20\n'),
    'metadata_list': (b'comment gsclip_mm {', b'comment gsclip_mm [1]\ncomment x {'),  # was TypeError
    'metadata_string': (b'comment gsclip_mm {', b'comment gsclip_mm "x"\ncomment x {'),
    'non_ascii': (b'property float z\n', b'property float \xff\xfe\n'),
    'unknown_keyword': (b'element vertex 20\n', b'element vertex 20\nbogus\n'),
    'second_element': (b'end_header\n', b'element face 0\nend_header\n'),
}


@pytest.mark.parametrize('damage', sorted(HEADER_DAMAGE))
def test_malformed_header_is_corrupt_not_a_crash(tmp_path, damage):
    """Whatever the header's fault, load reports the file corrupt (so it is refitted) instead of raising."""
    cache = GaussianCache(str(tmp_path))
    key = 'ab' + '3' * 62
    path = cache.save(key, gaussians())
    old, new = HEADER_DAMAGE[damage]
    data = open(path, 'rb').read()
    assert old in data
    open(path, 'wb').write(data.replace(old, new, 1))
    assert cache.load(key) is None
    assert cache.corrupt == 1
    cache.save(key, gaussians())  # the refit's write repairs it
    assert cache.load(key) is not None and cache.corrupt == 1


def test_every_header_byte_damaged_is_caught(tmp_path):
    """Each byte of the header flipped in turn: load never raises, and never returns other Gaussians."""
    cache = GaussianCache(str(tmp_path))
    key = 'cd' + '4' * 62
    path = cache.save(key, gaussians())
    good = open(path, 'rb').read()
    end = good.index(b'end_header')
    for i in range(0, end, 3):
        open(path, 'wb').write(good[:i] + bytes([good[i] ^ 0x20]) + good[i + 1:])
        hit = cache.load(key)
        assert hit is None or np.allclose(hit[0], gaussians(), rtol=1e-5, atol=1e-6), i


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / 'sub' / 'x.ply'
    atomic_write(str(target), b'old')

    def killed(src, dst):
        raise KeyboardInterrupt  # the run dies between writing and renaming

    monkeypatch.setattr(os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(target), b'new contents')
    assert target.read_bytes() == b'old'  # the old file is intact
    assert os.listdir(tmp_path / 'sub') == ['x.ply']  # and no temporary file is left
