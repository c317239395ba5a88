"""FrozenCLIPHead: the loss by hand, image embeddings from the batch, freezing, checkpoints, predict."""
import builtins
import math
import os

import pytest
import torch
import torch.nn.functional as F

from gsclip_mm.models.losses import info_nce
from gsclip_mm.registry import MODELS
from gsclip_mm.structures import GSCLIPDataSample
from gsclip_mm.utils import readable_class_name

TEMPLATES = ('a point cloud of a {}.', 'a photo of a {}.')


def make_head(**kwargs):
    cfg = dict(type='FrozenCLIPHead', templates=TEMPLATES)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def samples(names, **meta):
    return [GSCLIPDataSample(metainfo=dict(class_name=n, **meta)) for n in names]


def unit_rows(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def ce(row, t):
    return -row[t] + math.log(sum(math.exp(v) for v in row))


# ---------------------------------------------------------------- text
def test_readable_names_and_prompt_averaged_text_embeddings():
    head = make_head()
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
def test_loss_on_hand_made_embeddings():
    head = make_head(loss_img_weight=0.0, init_logit_scale=1.0)
    d = head.embed_dims
    basis = torch.eye(d)
    head._text_cache.update({'bed': basis[0], 'chair': basis[1]})  # known text embeddings
    emb = torch.stack([3 * basis[0], basis[1], basis[0] + basis[1]])  # scale is normalised away
    losses = head.loss(emb, None, samples(['bed', 'chair', 'chair']))  # no image loss: no image embeddings needed
    assert set(losses) == {'loss_text', 'logit_scale'}
    s = 1 / math.sqrt(2)
    # logits z @ t^T with t = [bed, chair, chair]: [[1,0,0],[0,1,1],[s,s,s]]; chairs 1,2 mask each other
    rows = [ce([1, 0, 0], 0), ce([0, 1], 1), ce([s, s], 1)]
    cols = [ce([1, 0, s], 0), ce([0, 1], 1), ce([0, s], 1)]
    expected = 0.5 * 0.5 * (sum(rows) / 3 + sum(cols) / 3)  # w_t = 0.5
    assert losses['loss_text'].item() == pytest.approx(expected, rel=1e-5)
    assert losses['logit_scale'].item() == pytest.approx(1.0)


def test_loss_config_is_the_heads_loss_module():
    emb = unit_rows(3, 128, 0)
    plain = make_head(loss_img_weight=0.0, loss=dict(type='InfoNCELoss', mask_same_group=False))
    masked = make_head(loss_img_weight=0.0)
    ds = samples(['bed', 'chair', 'chair'])
    text = masked.text_embeddings(['bed', 'chair', 'chair'])
    scale = masked.temperature_scale()
    assert type(plain.loss_module).__name__ == 'InfoNCELoss' and not plain.loss_module.mask_same_group
    assert plain.loss(emb, None, ds)['loss_text'].item() == pytest.approx(0.5 * info_nce(emb, text, scale).item(),
                                                                          rel=1e-5)
    assert masked.loss(emb, None, ds)['loss_text'].item() == pytest.approx(
        0.5 * info_nce(emb, text, scale, torch.tensor([0, 1, 1])).item(), rel=1e-5)


def test_image_loss_takes_the_batchs_embeddings_weights_clamp_and_grads():
    head = make_head(loss_text_weight=0.25, loss_img_weight=0.75, init_logit_scale=1000.0)
    assert head.temperature_scale().item() == pytest.approx(100.0)  # clamped like CLIP
    head.logit_scale.data.fill_(math.log(10.0))
    emb = torch.randn(4, head.embed_dims, requires_grad=True)
    img = 3 * unit_rows(4, head.embed_dims, 1)  # normalised by the head
    ds = samples(['bed', 'sofa', 'desk', 'bed'], img_embed_clip=head.clip_identity)
    losses = head.loss(emb, img, ds)
    z = F.normalize(emb, dim=-1)
    t = head.text_embeddings(['bed', 'sofa', 'desk', 'bed'])
    ref_t = 0.25 * info_nce(z, t, torch.tensor(10.0), torch.tensor([0, 1, 2, 0]))
    ref_i = 0.75 * info_nce(z, F.normalize(img, dim=-1), torch.tensor(10.0))
    assert losses['loss_text'].item() == pytest.approx(ref_t.item(), rel=1e-5)
    assert losses['loss_img'].item() == pytest.approx(ref_i.item(), rel=1e-5)
    (losses['loss_text'] + losses['loss_img']).backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    assert head.logit_scale.grad is not None
    assert all(p.grad is None for p in head.clip.parameters())


def test_a_crop_repeated_in_the_batch_is_not_its_own_negative():
    head = make_head(loss_text_weight=0.0, loss_img_weight=1.0)
    emb = unit_rows(3, head.embed_dims, 2)
    img = unit_rows(3, head.embed_dims, 3)
    img[2] = img[0]  # a class-balanced sampler drew object 0 twice
    got = head.loss(emb, img, samples(['bed', 'sofa', 'bed']))['loss_img']
    ref = info_nce(emb, img, head.temperature_scale(), torch.tensor([0, 1, 0]))
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)
    assert got.item() != pytest.approx(info_nce(emb, img, head.temperature_scale()).item(), rel=1e-3)


def test_loss_reads_and_writes_no_file(monkeypatch, tmp_path):
    """The training step does no I/O: the image embeddings come with the batch (CLIP from a weights file)."""
    path = tmp_path / 'tiny_clip.pt'
    torch.save(make_head().clip.state_dict(), path)
    head = make_head(pretrained=str(path))
    head.text_embeddings(['bed', 'sofa'])  # text embeddings: computed once, in memory
    ds = samples(['bed', 'sofa'], img_embed_clip=head.clip_identity)

    def no_io(*args, **kwargs):
        raise AssertionError(f'file access in loss(): {args[:1]}')

    for name in ('open', 'stat', 'listdir', 'scandir'):
        monkeypatch.setattr(os, name, no_io)
    monkeypatch.setattr(builtins, 'open', no_io)
    losses = head.loss(torch.randn(2, head.embed_dims), unit_rows(2, head.embed_dims, 0), ds)
    assert set(losses) == {'loss_text', 'loss_img', 'logit_scale'}


def test_missing_or_foreign_image_embeddings_are_named():
    head = make_head()
    with pytest.raises(ValueError, match='no CLIP image embeddings.*LoadCLIPImageEmbedding.*loss_img_weight=0'):
        head.loss(torch.randn(2, head.embed_dims), None, samples(['bed', 'sofa']))
    with pytest.raises(ValueError, match=r'img_embed must be \[B=2, 128\]'):
        head.loss(torch.randn(2, head.embed_dims), torch.randn(2, 64), samples(['bed', 'sofa']))
    other = 'GSCLIP-Tiny-64|random(seed=9)'
    with pytest.raises(ValueError, match=r"come from 'GSCLIP-Tiny-64\|random\(seed=9\)' but the head's CLIP is "
                                         r"'GSCLIP-Tiny-64\|random\(seed=0\)'"):
        head.loss(torch.randn(1, head.embed_dims), unit_rows(1, head.embed_dims, 0),
                  samples(['bed'], img_embed_clip=other))


def test_bad_embedding_width_and_missing_metainfo():
    head = make_head(loss_img_weight=0.0)
    with pytest.raises(ValueError, match='embed_dims'):
        head.loss(torch.randn(2, 7), None, samples(['bed', 'sofa']))
    with pytest.raises(KeyError, match='class_name'):
        head.loss(torch.randn(1, head.embed_dims), None, [GSCLIPDataSample()])


# ---------------------------------------------------------------- frozen
def test_clip_is_frozen_not_a_parameter_and_stays_eval():
    head = make_head()
    assert [n for n, _ in head.named_parameters()] == ['logit_scale']
    assert all(not p.requires_grad for p in head.clip.parameters())
    assert sum(p.numel() for p in head.clip.parameters()) > 1_000_000
    optim = torch.optim.AdamW(head.parameters())
    assert sum(p.numel() for g in optim.param_groups for p in g['params']) == 1
    head.train()
    assert head.training and not head.clip.training
    assert not any(m.training for m in head.clip.modules())
    assert head.clip_untrained


def test_checkpoint_round_trip_leaves_clip_untouched(tmp_path):
    head = make_head()
    before = {k: v.clone() for k, v in head.clip.state_dict().items()}
    head.logit_scale.data.fill_(2.5)
    path = tmp_path / 'head.pth'
    torch.save(head.state_dict(), path)
    ckpt = torch.load(path)
    assert list(ckpt) == ['logit_scale']  # no CLIP key, no loss key
    other = make_head()
    other.load_state_dict(ckpt, strict=True)
    assert other.logit_scale.item() == pytest.approx(2.5)
    assert all(torch.equal(v, other.clip.state_dict()[k]) for k, v in before.items())


def test_pretrained_weights_reach_the_head(tmp_path):
    src = make_head(clip_seed=3)
    path = tmp_path / 'tiny_clip.pt'
    torch.save(src.clip.state_dict(), path)
    head = make_head(pretrained=str(path))
    assert not head.clip_untrained
    assert torch.equal(head.clip.visual.conv1.weight, src.clip.visual.conv1.weight)
    assert str(path) in head.clip_identity


# ---------------------------------------------------------------- predict
def test_predict_scores_over_eval_vocabulary():
    classes = ('bed', 'night_stand', 'sofa')
    head = make_head(eval_classes=classes)
    text = head.text_embeddings(classes)  # [3, D]
    emb = torch.stack([2 * text[1], text[2] + 0.01 * text[0]])
    out = head.predict(emb, samples(['night_stand', 'sofa']))
    assert out[0].pred_score.shape == (3, ) and out[0].pred_label.item() == 1
    assert out[1].pred_label.item() == 2
    assert out[0].pred_score[1].item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(out[1].pred_score, F.normalize(emb[1], dim=0) @ text.t(), atol=1e-6)
    assert torch.allclose(out[0].embedding, text[1], atol=1e-6)
    assert out[0].score_classes == classes and out[0].clip_untrained is True
    assert out[0].clip_model == 'GSCLIP-Tiny-64|random(seed=0)'


def test_predict_label_follows_the_metric_rule():
    head = make_head(eval_classes=('bed', 'night_stand', 'sofa'))
    text = head.text_embeddings(head.eval_classes)
    emb = torch.stack([text[2], torch.zeros_like(text[0]), torch.full_like(text[0], float('nan'))])
    out = head.predict(emb, samples(['sofa', 'bed', 'bed']))
    assert out[0].pred_label.tolist() == [2]
    assert out[1].pred_label.tolist() == [0]  # all scores 0: a tie goes to the first class
    assert out[2].pred_label.tolist() == [-1] and out[2].pred_score.isnan().all()  # diverged: no prediction
