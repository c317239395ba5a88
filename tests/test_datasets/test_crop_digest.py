"""PackGSCLIPInputs' crop_digest: the CLIP image-embedding cache key follows the crop's content."""
import hashlib

import numpy as np

from gsclip_mm.datasets.transforms.formatting import make_crop_digest
from gsclip_mm.registry import TRANSFORMS

SHA_A, SHA_B = 'a' * 64, 'b' * 64


def pack(**results):
    base = dict(gaussians=np.ones((2, 14), np.float32), img_path='/d/image/000017.jpg', bbox=[1.0, 2.0, 30.5, 40.0],
                class_name='bed')
    base.update(results)
    return TRANSFORMS.build(dict(type='PackGSCLIPInputs'))(base)['data_samples'].metainfo


def test_file_sha256_and_box_make_the_digest_with_or_without_the_crop():
    crop = np.zeros((4, 6, 3), np.uint8)
    with_crop = pack(img_sha256=SHA_A, img_crop=crop)
    points_only = pack(img_sha256=SHA_A)  # a points-only pipeline reaches the same cached embedding
    assert with_crop['crop_digest'] == points_only['crop_digest'] == f'file-sha256={SHA_A}|1.00,2.00,30.50,40.00'
    assert pack(img_sha256=SHA_B, img_crop=crop)['crop_digest'] != with_crop['crop_digest']  # new file bytes
    assert pack(img_sha256=SHA_A, bbox=[1.0, 2.0, 30.5, 41.0])['crop_digest'] != with_crop['crop_digest']
    assert with_crop['crop_key'] == pack(img_sha256=SHA_B)['crop_key']  # the readable key stays path-based


def test_without_file_hash_the_crop_pixels_are_hashed():
    crop = np.arange(72, dtype=np.uint8).reshape(4, 6, 3)
    digest = pack(img_crop=crop)['crop_digest']
    assert digest == 'pixels-sha256=' + hashlib.sha256(b'4x6x3|' + crop.tobytes()).hexdigest()
    changed = crop.copy()
    changed[0, 0, 0] += 1
    assert pack(img_crop=changed)['crop_digest'] != digest
    # same bytes, other shape: another crop
    assert pack(img_crop=np.ascontiguousarray(crop.reshape(6, 4, 3)))['crop_digest'] != digest
    assert 'crop_digest' not in pack()  # neither hash nor crop: only the path-based crop_key
    assert make_crop_digest(dict(img_sha256=SHA_A)) is None  # a file hash without a box names no crop
