"""The open_clip loader: offline weights, frozen seeded models, identities, open_clip's preprocessing config."""
import time

import open_clip
import pytest
import torch

from gsclip_mm.clip import (TINY_CLIP_NAME, build_frozen_clip, clip_embed_dims, clip_identity, clip_preprocess_cfg,
                            register_embedded_configs, resolve_pretrained)

# A tag of our own for the tiny architecture, whose preprocessing differs from every default.
TAG_CFG = dict(url='https://example.invalid/x/tiny.pt', mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
               interpolation='bilinear', resize_mode='longest')


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def mytag(monkeypatch, tmp_path):
    """``pretrained='mytag'`` names TAG_CFG, whose file (seed-7 tiny weights) is in a local URL cache."""
    cache = tmp_path / 'clipcache'
    cache.mkdir()
    torch.save(build_frozen_clip(TINY_CLIP_NAME, None, 7).state_dict(), cache / 'tiny.pt')
    real = open_clip.get_pretrained_cfg
    monkeypatch.setattr(open_clip, 'get_pretrained_cfg',
                        lambda name, tag: dict(TAG_CFG) if tag == 'mytag' else real(name, tag))
    return str(cache)


def test_random_clip_is_frozen_and_deterministic_per_seed():
    a, b, c = (build_frozen_clip(TINY_CLIP_NAME, None, s) for s in (0, 0, 1))
    sa, sb, sc = state(a), state(b), state(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa['visual.conv1.weight'], sc['visual.conv1.weight'])
    assert not a.training and not any(m.training for m in a.modules())
    assert all(not p.requires_grad for p in a.parameters())
    torch.manual_seed(123)
    x = torch.rand(1)
    torch.manual_seed(123)
    build_frozen_clip(TINY_CLIP_NAME, None, 0)  # building a CLIP must not disturb the global RNG
    assert torch.equal(torch.rand(1), x)


def test_preprocess_cfg_is_what_open_clip_builds():
    """Resolved from the configs alone, it equals the built model's and create_model_and_transforms' recipe."""
    cfg = clip_preprocess_cfg(TINY_CLIP_NAME)
    assert cfg == dict(size=(64, 64), mode='RGB', mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD,
                       interpolation='bicubic', resize_mode='shortest', fill_color=0)
    assert cfg == build_frozen_clip(TINY_CLIP_NAME, None).visual.preprocess_cfg
    model, _, val = open_clip.create_model_and_transforms(TINY_CLIP_NAME, pretrained_text=False)
    assert cfg == model.visual.preprocess_cfg
    assert 'Resize(size=64, interpolation=bicubic' in repr(val) and 'CenterCrop(size=(64, 64))' in repr(val)
    # the paper's ViT-B-16 / openai: 224 px, OpenAI's statistics, bicubic, shortest side + centre crop
    vit = clip_preprocess_cfg('ViT-B-16', 'openai')
    assert (vit['size'], vit['interpolation'], vit['resize_mode']) == ((224, 224), 'bicubic', 'shortest')
    assert clip_embed_dims('ViT-B-16') == 512 and clip_embed_dims(TINY_CLIP_NAME) == 128


def test_a_tag_loaded_by_path_keeps_the_tags_preprocessing(mytag):
    path, tag_cfg = resolve_pretrained(TINY_CLIP_NAME, 'mytag', mytag)
    assert path.endswith('tiny.pt') and tag_cfg['mean'] == (0.5, 0.5, 0.5)
    model = build_frozen_clip(TINY_CLIP_NAME, 'mytag', cache_dir=mytag)
    assert torch.equal(model.visual.conv1.weight, build_frozen_clip(TINY_CLIP_NAME, None, 7).visual.conv1.weight)
    expected = dict(size=(64, 64), mode='RGB', mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                    interpolation='bilinear', resize_mode='longest', fill_color=0)
    assert clip_preprocess_cfg(TINY_CLIP_NAME, 'mytag') == expected == model.visual.preprocess_cfg
    assert clip_identity(TINY_CLIP_NAME, 'mytag') == 'GSCLIP-Tiny-64|tag=mytag'


def test_local_checkpoint_file_and_identities(tmp_path):
    path = tmp_path / 'tiny_clip.pt'
    torch.save(build_frozen_clip(TINY_CLIP_NAME, None, 3).state_dict(), path)
    model = build_frozen_clip(TINY_CLIP_NAME, str(path))
    assert torch.equal(model.visual.conv1.weight, build_frozen_clip(TINY_CLIP_NAME, None, 3).visual.conv1.weight)
    ident = clip_identity(TINY_CLIP_NAME, str(path))
    assert ident.startswith(f'GSCLIP-Tiny-64|file={path}|{path.stat().st_size}|')
    assert clip_identity(TINY_CLIP_NAME, None, 5) == 'GSCLIP-Tiny-64|random(seed=5)'
    assert clip_preprocess_cfg(TINY_CLIP_NAME, str(path)) == clip_preprocess_cfg(TINY_CLIP_NAME)  # a file: defaults


def test_named_weights_without_network_fail_fast_with_instructions(tmp_path):
    t = time.time()
    with pytest.raises(FileNotFoundError) as err:
        build_frozen_clip('ViT-B-16', 'openai', cache_dir=str(tmp_path / 'empty'))
    assert time.time() - t < 5
    msg = str(err.value)
    assert 'no network' in msg and 'model.head.pretrained=' in msg and "ViT-B-16" in msg and '`clip`' in msg
    with pytest.raises(FileNotFoundError, match='not_here.pt'):
        build_frozen_clip(TINY_CLIP_NAME, str(tmp_path / 'not_here.pt'))
    with pytest.raises(FileNotFoundError, match='neither a local file nor an open_clip tag'):
        build_frozen_clip(TINY_CLIP_NAME, 'no_such_tag')
    with pytest.raises(ValueError, match="unknown open_clip model_name 'No-Such-CLIP'"):
        build_frozen_clip('No-Such-CLIP', None)
    with pytest.raises(ValueError, match="'No-Such-CLIP'"):
        clip_preprocess_cfg('No-Such-CLIP')


def test_embedded_config_registration_is_idempotent():
    register_embedded_configs()
    register_embedded_configs()
    assert open_clip.list_models().count(TINY_CLIP_NAME) == 1
