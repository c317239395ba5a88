"""Loading a frozen open_clip model offline, and what its image embeddings depend on.

Three pure lookups and one builder, shared by the head (text tower), the
pipeline's image-embedding step and ``tools/extract_image_embeddings.py``
(image tower):

* :func:`resolve_pretrained`: ``pretrained`` (None, a local file, or an
  open_clip tag) -> a local checkpoint path; never touches the network.
* :func:`clip_identity`: a string naming the weights (what embeddings depend on).
* :func:`clip_preprocess_cfg`: open_clip's inference preprocessing of the
  model (its ``PreprocessCfg`` as a dict), without building the model.
* :func:`build_frozen_clip`: the open_clip model, frozen, in eval mode.

The embedded default ``GSCLIP-Tiny-64`` is a small open_clip ViT whose config
ships with the package (``clip/model_configs``); with
``pretrained=None`` its weights are random and seeded.
"""
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

# The embedded default: a small open_clip ViT shipped with the package (random weights, seeded).
TINY_CLIP_NAME = 'GSCLIP-Tiny-64'
_CLIP_CONFIG_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'model_configs')
# open_clip's default Hugging Face file names (open_clip.constants).
_HF_WEIGHT_FILES = ('open_clip_model.safetensors', 'open_clip_pytorch_model.bin')


def register_embedded_configs() -> None:
    """Make the package's small open_clip configs known to open_clip (idempotent)."""
    import open_clip
    if TINY_CLIP_NAME in open_clip.list_models():
        return
    if not osp.isfile(osp.join(_CLIP_CONFIG_DIR, f'{TINY_CLIP_NAME}.json')):
        raise FileNotFoundError(f'the embedded open_clip config {TINY_CLIP_NAME}.json is missing from '
                                f'{_CLIP_CONFIG_DIR}; reinstall gsclip_mm (package data)')
    open_clip.add_model_config(_CLIP_CONFIG_DIR)


def _model_config(model_name: str) -> dict:
    """open_clip's architecture config of ``model_name``; ValueError naming it when unknown."""
    import open_clip
    register_embedded_configs()
    cfg = open_clip.get_model_config(model_name)
    if not cfg:
        raise ValueError(f'unknown open_clip model_name {model_name!r} (the config\'s clip settings / '
                         f'model.head.model_name); known: {", ".join(open_clip.list_models()[:8])}, ...')
    return cfg


def _no_weights_message(model_name: str, pretrained: str, looked_in: Sequence[str]) -> str:
    where = '\n  '.join(looked_in) if looked_in else '(no download source known)'
    return (f'open_clip weights {model_name!r} / pretrained={pretrained!r} are not available locally and this '
            f'machine has no network. Looked in:\n  {where}\n'
            f'Download them where there is network (e.g. `python -c "import open_clip; '
            f"open_clip.create_model('{model_name}', pretrained='{pretrained}')\"`), copy the checkpoint here, and "
            f'point `pretrained` at the local file: in the config\'s `clip` settings, which the head and the '
            f'image-embedding step both read (or --cfg-options model.head.pretrained=/path/to/{model_name}.bin '
            f'plus the same for LoadCLIPImageEmbedding), or set pretrained=None for the untrained default.')


def resolve_pretrained(model_name: str, pretrained: Optional[str],
                       cache_dir: Optional[str] = None) -> Tuple[Optional[str], Dict]:
    """Map ``pretrained`` to a local checkpoint file without touching the network.

    Args:
        model_name: open_clip architecture name, e.g. ``'ViT-B-16'``.
        pretrained: None (random weights), a local file path, or an open_clip tag
            (e.g. ``'openai'``) whose weights must already be in the local
            Hugging Face / open_clip URL cache.
        cache_dir: open_clip's ``cache_dir`` if one was used to download.

    Returns:
        ``(path or None, tag_cfg)``: the file to load, and the tag's open_clip
        pretrained config (mean/std, interpolation, quick_gelu), empty for files.

    Raises:
        FileNotFoundError: with instructions when the weights are not local.
    """
    if pretrained is None:
        return None, {}
    import open_clip
    path = osp.expanduser(str(pretrained))
    if osp.isfile(path):
        return path, {}
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not tag_cfg:
        if osp.sep in path or path.endswith(('.pt', '.pth', '.bin', '.safetensors')):
            raise FileNotFoundError(f'CLIP checkpoint file not found: {path!r} (clip pretrained)')
        raise FileNotFoundError(
            f'pretrained={pretrained!r} is neither a local file nor an open_clip tag of {model_name!r} '
            f'(tags: {open_clip.list_pretrained_tags_by_model(model_name)}). ' +
            _no_weights_message(model_name, pretrained, []))
    looked_in = []
    if tag_cfg.get('file'):
        if osp.isfile(tag_cfg['file']):
            return tag_cfg['file'], tag_cfg
        looked_in.append(tag_cfg['file'])
    if tag_cfg.get('hf_hub'):
        from huggingface_hub import try_to_load_from_cache

        # open_clip's convention: 'org/repo/' (default file names) or 'org/repo/file.bin'
        repo_id, filename = osp.split(tag_cfg['hf_hub'])
        names = [filename] if filename else list(_HF_WEIGHT_FILES)
        if filename.endswith(('.bin', '.pth')):  # open_clip prefers a safetensors sibling
            names.insert(0, filename[:-4] + '.safetensors')
        for name in names:
            hit = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(hit, str) and osp.isfile(hit):
                return hit, tag_cfg
            looked_in.append(f'Hugging Face cache: {repo_id}/{name}')
    if tag_cfg.get('url'):
        url_file = osp.join(cache_dir or osp.expanduser('~/.cache/clip'), osp.basename(tag_cfg['url']))
        if osp.isfile(url_file):
            return url_file, tag_cfg
        looked_in.append(url_file)
    raise FileNotFoundError(_no_weights_message(model_name, pretrained, looked_in))


def clip_identity(model_name: str, pretrained: Optional[str], clip_seed: int = 0) -> str:
    """Name, weights and seed of a CLIP: what its embeddings depend on (cache keys, reports).

    ``'<name>|random(seed=S)'`` for random weights, ``'<name>|file=<abs path>|<bytes>|<mtime>'``
    for a local file, ``'<name>|tag=<tag>'`` for an open_clip tag.
    """
    if pretrained is None:
        return f'{model_name}|random(seed={int(clip_seed)})'
    path = osp.expanduser(str(pretrained))
    if osp.isfile(path):
        st = os.stat(path)
        return f'{model_name}|file={osp.abspath(path)}|{st.st_size}|{int(st.st_mtime)}'
    return f'{model_name}|tag={pretrained}'


def _tag_preprocess(model_name: str, pretrained: Optional[str]) -> dict:
    """The preprocessing fields of ``pretrained``'s open_clip tag config (empty for None / files)."""
    if pretrained is None or osp.isfile(osp.expanduser(str(pretrained))):
        return {}
    import open_clip
    from open_clip.transform import merge_preprocess_dict
    return merge_preprocess_dict({}, open_clip.get_pretrained_cfg(model_name, pretrained) or {})


def clip_preprocess_cfg(model_name: str, pretrained: Optional[str] = None) -> dict:
    """open_clip's inference preprocessing of a CLIP, as a ``PreprocessCfg`` dict.

    What ``open_clip.create_model(model_name, pretrained)`` sets as
    ``model.visual.preprocess_cfg`` (and ``create_model_and_transforms``
    turns into its validation transform), resolved from the configs alone:
    ``PreprocessCfg()``'s defaults (bicubic, ``resize_mode='shortest'``, the
    OpenAI mean/std), then the tag's fields (``mean``, ``std``,
    ``interpolation``, ``resize_mode``), then ``size`` from the architecture's
    ``vision_cfg.image_size``.

    Returns:
        dict with ``size`` (h, w), ``mode``, ``mean``, ``std``, ``interpolation``,
        ``resize_mode``, ``fill_color``.
    """
    from dataclasses import asdict

    from open_clip.transform import PreprocessCfg, merge_preprocess_dict
    from open_clip.utils import to_2tuple
    size = to_2tuple(_model_config(model_name)['vision_cfg']['image_size'])
    cfg = merge_preprocess_dict(asdict(PreprocessCfg()), _tag_preprocess(model_name, pretrained))
    cfg['size'] = tuple(int(s) for s in size)
    return cfg


def clip_embed_dims(model_name: str) -> int:
    """Width ``D`` of the CLIP's joint embedding space (its config's ``embed_dim``)."""
    return int(_model_config(model_name)['embed_dim'])


def build_frozen_clip(model_name: str, pretrained: Optional[str], clip_seed: int = 0,
                      cache_dir: Optional[str] = None) -> nn.Module:
    """Build an open_clip model, frozen and in eval mode.

    With ``pretrained=None`` the weights are random but deterministic: the
    construction runs under ``torch.manual_seed(clip_seed)`` inside a forked
    RNG, so the global random state is untouched. A tag's file is loaded by
    path with the tag's activation and preprocessing, as
    ``open_clip.create_model(model_name, pretrained=tag)`` would.
    """
    import open_clip
    _model_config(model_name)  # a clear error for an unknown name, before anything is built
    path, tag_cfg = resolve_pretrained(model_name, pretrained, cache_dir)
    kwargs = {}
    if tag_cfg:  # loading a tag's file by path: keep the tag's activation and preprocessing
        kwargs['force_quick_gelu'] = bool(tag_cfg.get('quick_gelu', False))
        kwargs['force_preprocess_cfg'] = _tag_preprocess(model_name, pretrained)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(clip_seed)
        # pretrained_text/image=False: never fetch tower weights for a randomly initialised model
        model = open_clip.create_model(model_name, pretrained=path, pretrained_text=False,
                                       pretrained_image=False, **kwargs)
    model.requires_grad_(False)
    return model.eval()


@torch.no_grad()
def encode_images(clip: nn.Module, imgs: torch.Tensor) -> torch.Tensor:
    """The frozen image tower: ``[B, 3, S, S]`` preprocessed crops -> ``[B, D]`` float32 unit vectors."""
    assert imgs.ndim == 4 and imgs.shape[1] == 3, f'imgs must be [B, 3, S, S], got {tuple(imgs.shape)}'
    return F.normalize(clip.encode_image(imgs).float(), dim=-1)
