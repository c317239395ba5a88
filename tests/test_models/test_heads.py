"""FrozenCLIPHead: the loss by hand, freezing, checkpoints, caches, offline weights."""
import math
import os

import pytest
import torch
import torch.nn.functional as F

from gsclip_mm.models.heads import info_nce, retrieval_ranks
from gsclip_mm.utils import readable_class_name
from gsclip_mm.models.heads import frozen_clip_head as fch
from gsclip_mm.registry import MODELS
from gsclip_mm.structures import GSCLIPDataSample

TEMPLATES = ('a point cloud of a {}.', 'a photo of a {}.')


def make_head(tmp_path, **kwargs):
    cfg = dict(type='FrozenCLIPHead', templates=TEMPLATES, img_cache_dir=str(tmp_path / 'imgcache'))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def samples(names, keys=None):
    keys = keys or [f'crop{i}' for i in range(len(names))]
    return [GSCLIPDataSample(metainfo=dict(class_name=n, crop_key=k)) for n, k in zip(names, keys)]


def clip_state(head):
    return {k: v.clone() for k, v in head.clip.state_dict().items()}


# ---------------------------------------------------------------- InfoNCE
def test_info_nce_two_orthogonal_pairs():
    a = torch.eye(2)
    # logits = I: each row's CE is -log(e / (e + 1)) = log(1 + e^-1), both directions alike
    expected = math.log(1 + math.exp(-1))
    assert info_nce(a, a, torch.tensor(1.0)).item() == pytest.approx(expected, rel=1e-6)
    # scale 2: log(1 + e^-2)
    assert info_nce(a, a, torch.tensor(2.0)).item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_info_nce_three_vectors_by_hand_with_duplicate_mask():
    s = 1 / math.sqrt(2)
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [s, s]])
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # texts; rows 0 and 1 share a class
    L = a @ b.t()  # [[1,1,0],[0,0,1],[s,s,s]]
    assert torch.allclose(L, torch.tensor([[1, 1, 0], [0, 0, 1], [s, s, s]]))

    def ce(row, t):
        return -row[t] + math.log(sum(math.exp(v) for v in row))

    # no mask: plain CLIP InfoNCE, 3D->text rows and text->3D columns
    rows = [ce([1, 1, 0], 0), ce([0, 0, 1], 1), ce([s, s, s], 2)]
    cols = [ce([1, 0, s], 0), ce([1, 0, s], 1), ce([0, 1, s], 2)]
    plain = 0.5 * (sum(rows) / 3 + sum(cols) / 3)
    assert info_nce(a, b, torch.tensor(1.0)).item() == pytest.approx(plain, rel=1e-6)
    assert info_nce(a, b, torch.tensor(1.0), symmetric=False).item() == pytest.approx(sum(rows) / 3, rel=1e-6)

    # groups 0, 0, 1: entries (0,1) and (1,0) are dropped from both softmaxes
    rows_m = [ce([1, 0], 0), ce([0, 1], 0), ce([s, s, s], 2)]
    cols_m = [ce([1, s], 0), ce([0, s], 0), ce([0, 1, s], 2)]
    masked = 0.5 * (sum(rows_m) / 3 + sum(cols_m) / 3)
    got = info_nce(a, b, torch.tensor(1.0), groups=torch.tensor([0, 0, 1]))
    assert got.item() == pytest.approx(masked, rel=1e-6)


def test_retrieval_ranks_by_hand():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    g = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.9]])
    # query 0: its match g0 has cos 0, g1 ties it (ties count against) and g2 (0.74) beats it -> rank 2;
    # query 1: g1 = g0 tie at cos 1 -> rank 1; query 2: g2 (cos 0.9997) beats g0/g1 (0.707) -> rank 0
    assert retrieval_ranks(q, g).tolist() == [2, 1, 0]
    assert retrieval_ranks(q, g, torch.tensor([2, 0, 2])).tolist() == [0, 1, 0]


# ---------------------------------------------------------------- text
def test_readable_names_and_prompt_averaged_text_embeddings(tmp_path):
    head = make_head(tmp_path)
    assert readable_class_name('night_stand') == 'night stand'
    emb = head.text_embeddings(['night_stand', 'night stand', 'bed'])  # [3, D]
    assert emb.shape == (3, head.embed_dims)
    assert torch.equal(emb[0], emb[1])
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-6)
    # reference: open_clip directly, normalise per prompt, average, normalise
    import open_clip
    tok = open_clip.get_tokenizer(head.model_name)
    with torch.no_grad():
        e = F.normalize(head.clip.encode_text(tok([t.format('night stand') for t in TEMPLATES])), dim=-1)
    assert torch.allclose(emb[0], F.normalize(e.mean(0), dim=0), atol=1e-6)

    calls = []
    orig = head.clip.encode_text
    head.clip.encode_text = lambda *a, **k: calls.append(1) or orig(*a, **k)
    head.text_embeddings(['bed', 'night_stand'])  # cached: no text encoder run
    assert calls == []


# ---------------------------------------------------------------- loss
def test_loss_on_hand_made_embeddings(tmp_path):
    head = make_head(tmp_path, loss_img_weight=0.0, init_logit_scale=1.0)
    d = head.embed_dims
    basis = torch.eye(d)
    head._text_cache.update({'bed': basis[0], 'chair': basis[1]})  # known text embeddings
    emb = torch.stack([3 * basis[0], basis[1], basis[0] + basis[1]])  # scale is normalised away
    losses = head.loss(emb, None, samples(['bed', 'chair', 'chair']))
    assert set(losses) == {'loss_text', 'logit_scale'}
    s = 1 / math.sqrt(2)

    def ce(row, t):
        return -row[t] + math.log(sum(math.exp(v) for v in row))

    # logits z @ t^T with t = [bed, chair, chair]: [[1,0,0],[0,1,1],[s,s,s]]; chairs 1,2 mask each other
    rows = [ce([1, 0, 0], 0), ce([0, 1], 1), ce([s, s], 1)]
    cols = [ce([1, 0, s], 0), ce([0, 1], 1), ce([0, s], 1)]
    expected = 0.5 * 0.5 * (sum(rows) / 3 + sum(cols) / 3)  # w_t = 0.5
    assert losses['loss_text'].item() == pytest.approx(expected, rel=1e-5)
    assert losses['logit_scale'].item() == pytest.approx(1.0)


def test_loss_weights_temperature_clamp_and_grads(tmp_path):
    head = make_head(tmp_path, loss_text_weight=0.25, loss_img_weight=0.75, init_logit_scale=1000.0)
    assert head.temperature_scale().item() == pytest.approx(100.0)  # clamped like CLIP
    head.logit_scale.data.fill_(math.log(10.0))
    emb = torch.randn(4, head.embed_dims, requires_grad=True)
    imgs = torch.randn(4, 3, 64, 64)
    ds = samples(['bed', 'sofa', 'desk', 'bed'])
    losses = head.loss(emb, imgs, ds)
    z = F.normalize(emb, dim=-1)
    t = head.text_embeddings(['bed', 'sofa', 'desk', 'bed'])
    i = head.image_embeddings(None, [d.crop_key for d in ds])
    ref_t = 0.25 * info_nce(z, t, torch.tensor(10.0), torch.tensor([0, 1, 2, 0]))
    ref_i = 0.75 * info_nce(z, i, torch.tensor(10.0))
    assert losses['loss_text'].item() == pytest.approx(ref_t.item(), rel=1e-5)
    assert losses['loss_img'].item() == pytest.approx(ref_i.item(), rel=1e-5)
    (losses['loss_text'] + losses['loss_img']).backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    assert head.logit_scale.grad is not None
    assert all(p.grad is None for p in head.clip.parameters())


def test_bad_embedding_width_and_missing_metainfo(tmp_path):
    head = make_head(tmp_path, loss_img_weight=0.0)
    with pytest.raises(ValueError, match='embed_dims'):
        head.loss(torch.randn(2, 7), None, samples(['bed', 'sofa']))
    with pytest.raises(KeyError, match='class_name'):
        head.loss(torch.randn(1, head.embed_dims), None, [GSCLIPDataSample()])


# ---------------------------------------------------------------- frozen
def test_clip_is_frozen_not_a_parameter_and_stays_eval(tmp_path):
    head = make_head(tmp_path)
    assert [n for n, _ in head.named_parameters()] == ['logit_scale']
    assert all(not p.requires_grad for p in head.clip.parameters())
    assert sum(p.numel() for p in head.clip.parameters()) > 1_000_000
    optim = torch.optim.AdamW(head.parameters())
    assert sum(p.numel() for g in optim.param_groups for p in g['params']) == 1
    head.train()
    assert head.training and not head.clip.training
    assert not any(m.training for m in head.clip.modules())
    assert head.clip_untrained


def test_random_clip_is_deterministic_per_seed(tmp_path):
    a, b, c = make_head(tmp_path), make_head(tmp_path), make_head(tmp_path, clip_seed=1)
    sa, sb, sc = clip_state(a), clip_state(b), clip_state(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa['visual.conv1.weight'], sc['visual.conv1.weight'])
    torch.manual_seed(123)
    x = torch.rand(1)
    torch.manual_seed(123)
    make_head(tmp_path)  # building a CLIP must not disturb the global RNG
    assert torch.equal(torch.rand(1), x)


def test_checkpoint_round_trip_leaves_clip_untouched(tmp_path):
    head = make_head(tmp_path)
    before = clip_state(head)
    head.logit_scale.data.fill_(2.5)
    path = tmp_path / 'head.pth'
    torch.save(head.state_dict(), path)
    ckpt = torch.load(path)
    assert list(ckpt) == ['logit_scale']  # no CLIP key
    other = make_head(tmp_path)
    other.load_state_dict(ckpt, strict=True)
    assert other.logit_scale.item() == pytest.approx(2.5)
    after = clip_state(other)
    assert all(torch.equal(before[k], after[k]) for k in before)


# ---------------------------------------------------------------- weights
def test_named_weights_without_network_fail_fast_with_instructions(tmp_path):
    import time
    t = time.time()
    with pytest.raises(FileNotFoundError) as err:
        make_head(tmp_path, model_name='ViT-B-16', pretrained='openai', clip_cache_dir=str(tmp_path / 'empty'))
    assert time.time() - t < 5
    msg = str(err.value)
    assert 'no network' in msg and 'model.head.pretrained=' in msg and 'ViT-B-16' in msg
    with pytest.raises(FileNotFoundError, match='not_here.pt'):
        make_head(tmp_path, pretrained=str(tmp_path / 'not_here.pt'))
    with pytest.raises(FileNotFoundError, match='neither a local file nor an open_clip tag'):
        make_head(tmp_path, pretrained='no_such_tag')


def test_tag_found_in_local_url_cache_is_loaded_by_path(tmp_path, monkeypatch):
    src = make_head(tmp_path, clip_seed=7)
    cache = tmp_path / 'clipcache'
    cache.mkdir()
    cfg = dict(url='https://example.invalid/x/tiny.pt', mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    torch.save(src.clip.state_dict(), cache / 'tiny.pt')
    import open_clip
    monkeypatch.setattr(open_clip, 'get_pretrained_cfg', lambda name, tag: cfg if tag == 'mytag' else {})
    head = make_head(tmp_path, pretrained='mytag', clip_cache_dir=str(cache))
    assert not head.clip_untrained
    assert head.clip_mean == (0.5, 0.5, 0.5) and head.clip_std == (0.25, 0.25, 0.25)
    assert torch.equal(head.clip.visual.conv1.weight, src.clip.visual.conv1.weight)


def test_local_checkpoint_file_is_loaded(tmp_path):
    src = make_head(tmp_path, clip_seed=3)
    path = tmp_path / 'tiny_clip.pt'
    torch.save(src.clip.state_dict(), path)
    head = make_head(tmp_path, pretrained=str(path))
    assert not head.clip_untrained
    assert torch.equal(head.clip.visual.conv1.weight, src.clip.visual.conv1.weight)
    assert str(path) in head.clip_identity


# ---------------------------------------------------------------- image cache
def test_image_embedding_disk_cache_hit_and_atomic_files(tmp_path):
    head = make_head(tmp_path)
    imgs = torch.randn(3, 3, 64, 64)
    keys = ['scene1|0', 'scene1|1', 'scene2|0']
    first = head.image_embeddings(imgs, keys)  # [3, D]
    assert first.shape == (3, head.embed_dims) and head.num_images_encoded == 3
    ref = F.normalize(head.clip.encode_image(imgs).detach(), dim=-1)
    assert torch.allclose(first, ref, atol=1e-5)
    root = head.img_cache_dir()
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    assert sum(f.endswith('.npy') for f in files) == 3 and not any(f.endswith('.tmp') for f in files)
    assert any(f.endswith('model.json') for f in files)

    fresh = make_head(tmp_path)  # a new process's head: empty memory cache, same disk cache
    fresh.encode_images = lambda *a: pytest.fail('encoder ran on a cache hit')
    again = fresh.image_embeddings(None, keys)
    assert torch.equal(again, first) and fresh.num_images_encoded == 0
    # mixing a hit and a miss encodes the miss only
    fresh2 = make_head(tmp_path)
    fresh2.image_embeddings(torch.randn(2, 3, 64, 64), ['scene1|0', 'new|0'])
    assert fresh2.num_images_encoded == 1

    other = make_head(tmp_path, clip_seed=5)  # another CLIP: another cache folder
    assert other.img_cache_dir() != root
    with pytest.raises(ValueError, match='no cached CLIP image embedding'):
        other.image_embeddings(None, keys)


def test_interrupted_cache_write_leaves_no_file(tmp_path, monkeypatch):
    head = make_head(tmp_path)

    def broken_save(f, arr):
        f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(fch.np, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        head.image_embeddings(torch.randn(1, 3, 64, 64), ['k'])
    files = [f for _, _, fs in os.walk(head.img_cache_dir()) for f in fs]
    assert files == ['model.json']  # neither a partial .npy nor a stray temp file


# ---------------------------------------------------------------- predict / retrieval
def test_predict_scores_over_eval_vocabulary(tmp_path):
    classes = ('bed', 'night_stand', 'sofa')
    head = make_head(tmp_path, eval_classes=classes)
    text = head.text_embeddings(classes)  # [3, D]
    emb = torch.stack([2 * text[1], text[2] + 0.01 * text[0]])
    out = head.predict(emb, samples(['night_stand', 'sofa']))
    assert out[0].pred_score.shape == (3, ) and out[0].pred_label.item() == 1
    assert out[1].pred_label.item() == 2
    assert out[0].pred_score[1].item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(out[1].pred_score, F.normalize(emb[1], dim=0) @ text.t(), atol=1e-6)
    assert torch.allclose(out[0].embedding, text[1], atol=1e-6)
    assert out[0].score_classes == classes and out[0].clip_untrained is True


def test_text_to_shape_and_shape_to_image(tmp_path):
    head = make_head(tmp_path)
    text = head.text_embeddings(['bed', 'chair'])
    shapes = torch.stack([text[1], text[0], -text[0]])  # chair-like, bed-like, anti-bed
    scores, idx = head.text_to_shape(['bed'], shapes, topk=2)
    assert idx.tolist() == [[1, 0]] and scores[0, 0].item() == pytest.approx(1.0, abs=1e-5)
    imgs = torch.randn(3, 3, 64, 64)
    img = head.image_embeddings(imgs, ['a', 'b', 'c'])
    ranks = head.shape_to_image_ranks(img.flip(0), ['c', 'b', 'a'])  # shapes = their own crops' embeddings
    assert ranks.tolist() == [0, 0, 0]


def test_predict_label_follows_the_metric_rule(tmp_path):
    head = make_head(tmp_path, eval_classes=('bed', 'night_stand', 'sofa'))
    text = head.text_embeddings(head.eval_classes)
    emb = torch.stack([text[2], torch.zeros_like(text[0]), torch.full_like(text[0], float('nan'))])
    out = head.predict(emb, samples(['sofa', 'bed', 'bed']))
    assert out[0].pred_label.tolist() == [2]
    assert out[1].pred_label.tolist() == [0]  # all scores 0: a tie goes to the first class
    assert out[2].pred_label.tolist() == [-1] and out[2].pred_score.isnan().all()  # diverged: no prediction


def test_predict_unfittable_predicts_nothing(tmp_path):
    head = make_head(tmp_path, eval_classes=('bed', 'night_stand', 'sofa'))
    ds = samples(['sofa'])
    ds[0].set_metainfo(dict(unfittable='no points in box'))
    out, = head.predict_unfittable(ds)
    assert out.pred_score.shape == (3, ) and out.pred_score.isnan().all()
    assert out.pred_label.tolist() == [-1] and 'embedding' not in out
    assert out.score_classes == ('bed', 'night_stand', 'sofa') and out.clip_untrained is True


def test_image_cache_is_keyed_by_crop_content_not_path(tmp_path):
    """The same path and box with a changed image file must not reuse the old embedding."""
    from gsclip_mm.registry import TRANSFORMS
    pack = TRANSFORMS.build(dict(type='PackGSCLIPInputs'))
    head = make_head(tmp_path, loss_text_weight=0.0, loss_img_weight=1.0)
    g = torch.Generator().manual_seed(0)
    imgs = torch.randn(2, 1, 3, 64, 64, generator=g)  # the two versions' preprocessed crops
    packed = []
    for v in range(2):
        crop = torch.full((4, 6, 3), 10 * v, dtype=torch.uint8).numpy()  # the file changed between runs
        packed.append(pack(dict(gaussians=torch.ones(2, 14).numpy(), img_crop=crop, img_path='/d/img.jpg',
                                bbox=[0, 0, 5, 3], class_name='bed'))['data_samples'])
    assert packed[0].crop_key == packed[1].crop_key  # the old key: identical
    emb = torch.randn(1, head.embed_dims, generator=g)
    for v in range(2):
        head.loss(emb, imgs[v], [packed[v]])
    assert head.num_images_encoded == 2  # the second version was encoded, not served from the cache
    fresh = make_head(tmp_path)  # a new run: only the disk cache
    cached = [fresh.image_embeddings(None, fresh.crop_cache_keys([p])) for p in packed]
    for v in range(2):
        ref = F.normalize(head.clip.encode_image(imgs[v]).detach(), dim=-1)
        assert torch.allclose(cached[v], ref, atol=1e-5)
    assert not torch.allclose(cached[0], cached[1], atol=1e-3)
