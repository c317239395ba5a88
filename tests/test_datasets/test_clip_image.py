"""CLIP's image side of the pipeline: open_clip's own preprocessing on the real sample's crops,
and the crop's CLIP image embedding from a content-keyed disk cache."""
import hashlib
import os
import os.path as osp
import pickle

import numpy as np
import open_clip
import pytest
import torch

from gsclip_mm.clip import build_frozen_clip, encode_images, register_embedded_configs
from gsclip_mm.datasets.transforms import clip_image
from gsclip_mm.registry import TRANSFORMS

TINY = 'GSCLIP-Tiny-64'
SAMPLE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'sunrgbd_sample')
IMAGE = osp.join(SAMPLE, 'sunrgbd_trainval', 'image', '000017.jpg')


def sample_objects():
    """The real scene's two objects (night stand, bed) as the pipeline has them after LoadObjectImage."""
    with open(osp.join(SAMPLE, 'sunrgbd_infos_val.pkl'), 'rb') as f:
        instances = pickle.load(f)['data_list'][0]['instances']
    with open(IMAGE, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    load = TRANSFORMS.build(dict(type='LoadObjectImage'))
    return [load(dict(img_path=IMAGE, bbox=np.array(i['bbox'], np.float32), img_sha256=sha, instance_idx=k))
            for k, i in enumerate(instances)]


@pytest.fixture(scope='module')
def objects():
    return sample_objects()


def open_clip_preprocess(model_name=TINY):
    """open_clip's own validation transform of the model (PIL-based), the reference."""
    register_embedded_configs()
    _, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained_text=False)
    return preprocess


# ---------------------------------------------------------------- preprocessing
def test_preprocess_equals_open_clips_own_transform_on_the_real_crops(objects):
    """Both crops of the real scene (129x133 and 375x462 px): identical to open_clip's output, bit for bit."""
    from PIL import Image
    ours = TRANSFORMS.build(dict(type='CLIPImagePreprocess', model_name=TINY))
    ref = open_clip_preprocess()
    assert [o['img_crop'].shape for o in objects] == [(129, 133, 3), (375, 462, 3)]
    for o in objects:
        out = ours(dict(o))['clip_img']
        assert out.dtype == torch.float32 and out.shape == (3, 64, 64)
        assert torch.equal(out, ref(Image.fromarray(o['img_crop'])))  # difference 0: the same PIL operations


def test_preprocess_geometry_and_values_by_hand():
    """Shortest side to S, centre crop, (x / 255 - mean) / std: a 4x8 crop with S=4 keeps its middle 4 columns."""
    crop = np.zeros((4, 8, 3), np.uint8)
    crop[:, :2] = (255, 0, 0)  # left: red
    crop[:, 2:6] = (0, 255, 0)  # middle: green
    crop[:, 6:] = (0, 0, 255)  # right: blue
    t = TRANSFORMS.build(dict(type='CLIPImagePreprocess', model_name=TINY, preprocess_cfg=dict(size=4)))
    out = t.apply(crop)  # [3, 4, 4]
    mean, std = torch.tensor(open_clip.OPENAI_DATASET_MEAN), torch.tensor(open_clip.OPENAI_DATASET_STD)
    green = (torch.tensor([0.0, 1.0, 0.0]) - mean) / std
    assert torch.allclose(out, green.view(3, 1, 1).expand(3, 4, 4), atol=1e-6)
    # 'longest' instead would keep all three colours and pad: the recipe is what decides
    padded = TRANSFORMS.build(dict(type='CLIPImagePreprocess', model_name=TINY,
                                   preprocess_cfg=dict(size=4, resize_mode='longest'))).apply(crop)
    black = (0 - mean) / std
    assert torch.allclose(padded[:, 0], black.view(3, 1).expand(3, 4), atol=1e-6)
    assert padded[:, 1:3].amax(dim=(1, 2)).tolist() != padded[:, 1:3].amin(dim=(1, 2)).tolist()
    # a constant crop stays constant through the bicubic resize
    flat = t.apply(np.full((3, 5, 3), 100, np.uint8))
    assert torch.allclose(flat, ((100 / 255 - mean) / std).view(3, 1, 1).expand(3, 4, 4), atol=1e-6)


def test_preprocess_recipe_and_bad_input():
    base = TRANSFORMS.build(dict(type='CLIPImagePreprocess', model_name=TINY))
    assert '"resize_mode": "shortest"' in base.recipe and '"interpolation": "bicubic"' in base.recipe
    # how LoadObjectImage cuts the box decides the crop too: embeddings of the old (0-based) crops are not reused
    assert base.recipe.startswith('crop=sunrgbd-1based-outward|')
    other = TRANSFORMS.build(dict(type='CLIPImagePreprocess', model_name=TINY, preprocess_cfg=dict(
        interpolation='bilinear')))
    assert other.recipe != base.recipe
    with pytest.raises(ValueError, match=r"unknown preprocess_cfg fields \['antialias'\]"):
        TRANSFORMS.build(dict(type='CLIPImagePreprocess', model_name=TINY, preprocess_cfg=dict(antialias=True)))
    with pytest.raises(ValueError, match=r'img_crop must be a non-empty uint8 \[h, w, 3\].*float32 \(4, 4, 3\)'):
        base.apply(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="unknown open_clip model_name 'Nope'"):
        TRANSFORMS.build(dict(type='CLIPImagePreprocess', model_name='Nope'))


# ---------------------------------------------------------------- embeddings
def embed_step(tmp_path, **kwargs):
    cfg = dict(type='LoadCLIPImageEmbedding', model_name=TINY, pretrained=None, clip_seed=0,
               cache_dir=str(tmp_path / 'cache'))
    cfg.update(kwargs)
    return TRANSFORMS.build(cfg)


def files(root):
    return sorted(osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_a_miss_is_encoded_once_and_cached_atomically(tmp_path, objects):
    from PIL import Image
    step = embed_step(tmp_path)
    out = [step(dict(o)) for o in objects]
    clip = build_frozen_clip(TINY, None, 0)
    pre = open_clip_preprocess()
    for o, r in zip(objects, out):
        ref = encode_images(clip, pre(Image.fromarray(o['img_crop']))[None])[0].numpy()
        assert r['img_embed'].shape == (128, ) and r['img_embed'].dtype == np.float32
        np.testing.assert_allclose(r['img_embed'], ref, atol=1e-6)
        assert r['img_embed_clip'] == 'GSCLIP-Tiny-64|random(seed=0)'
    assert not np.allclose(out[0]['img_embed'], out[1]['img_embed'], atol=1e-3)
    names = files(tmp_path / 'cache')
    assert sum(n.endswith('.npy') for n in names) == 2 and sum(n.endswith('model.json') for n in names) == 1
    assert not any(n.endswith('.tmp') for n in names)

    fresh = embed_step(tmp_path)  # another process: only the disk cache
    fresh.encode = lambda *a: pytest.fail('the image tower ran on a cache hit')
    for o, r in zip(objects, out):
        hit = fresh({k: v for k, v in o.items() if k not in ('img', 'img_crop')})  # no image needed on a hit
        assert np.array_equal(hit['img_embed'], r['img_embed'])


def test_key_follows_content_clip_and_recipe(tmp_path, objects):
    step = embed_step(tmp_path)
    o = dict(objects[0])
    key = step.cache.path(step.crop_digest(o))
    assert step.crop_digest(o).startswith(f'file-sha256={o["img_sha256"]}|')
    assert step.cache.path(step.crop_digest(dict(o, img_sha256='0' * 64))) != key  # the file's bytes changed
    assert step.cache.path(step.crop_digest(dict(o, bbox=o['bbox'] + 1))) != key  # another box
    assert embed_step(tmp_path, clip_seed=5).cache.folder != step.cache.folder  # another CLIP
    assert embed_step(tmp_path, preprocess_cfg=dict(resize_mode='squash')).cache.folder != step.cache.folder
    with pytest.raises(ValueError, match='neither img_sha256 \\+ bbox.*nor img_crop'):
        step.crop_digest(dict(img_path='/d/x.jpg'))


def test_cache_only_miss_names_the_tool_and_memory_mode(tmp_path, objects):
    with pytest.raises(FileNotFoundError, match='run tools/extract_image_embeddings.py'):
        embed_step(tmp_path, cache_only=True)(dict(objects[0]))
    with pytest.raises(KeyError, match='put LoadObjectImage before it'):
        embed_step(tmp_path)({k: v for k, v in objects[0].items() if k != 'img_crop'})
    mem = embed_step(tmp_path, cache_dir=False)
    first = mem(dict(objects[0]))['img_embed']
    assert not (tmp_path / 'cache').exists()
    mem.encode = lambda *a: pytest.fail('encoded twice')
    assert np.array_equal(mem(dict(objects[0]))['img_embed'], first)
    with pytest.raises(ValueError, match='cache_only=True needs a disk cache'):
        embed_step(tmp_path, cache_dir=False, cache_only=True)


def test_interrupted_cache_write_leaves_no_file(tmp_path, objects, monkeypatch):
    step = embed_step(tmp_path)

    def broken_save(f, arr, **kwargs):
        f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(clip_image.np, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        step(dict(objects[0]))
    assert files(tmp_path / 'cache') == [osp.relpath(osp.join(step.cache.folder, 'model.json'), tmp_path / 'cache')]


def test_the_step_pickles_without_its_clip(tmp_path, objects):
    step = embed_step(tmp_path, cache_dir=False)
    step(dict(objects[0]))
    assert step._clip is not None
    clone = pickle.loads(pickle.dumps(step))  # what a data loader worker receives
    assert clone._clip is None and len(pickle.dumps(step)) < 1_000_000
