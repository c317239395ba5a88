"""GSCLIP: modes, training on the batch's CLIP image embeddings (no image tower, no I/O), checkpoints."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint

from gsclip_mm.models.losses import info_nce
from gsclip_mm.registry import MODELS
from gsclip_mm.structures import GSCLIPDataSample


@MODELS.register_module(force=True)
class _TinyGaussianEncoder(nn.Module):
    """Test stand-in for PointNet2GAF: per-Gaussian MLP, max-pool, linear -> embedding."""

    def __init__(self, in_channels=14, embed_dims=128):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_channels, 32), nn.ReLU(), nn.Linear(32, 32))
        self.out = nn.Linear(32, embed_dims)

    def forward(self, x):  # [B, N, C] -> dict(embedding=[B, D])
        feat = self.mlp(x).max(dim=1).values  # [B, 32]
        return dict(global_feat=feat, embedding=self.out(feat))


CLASSES = ('bed', 'chair', 'night_stand')
CLIP_ID = 'GSCLIP-Tiny-64|random(seed=0)'  # the default head's CLIP


def build(**head):
    torch.manual_seed(0)
    head_cfg = dict(type='FrozenCLIPHead', templates=('a point cloud of a {}.', ), eval_classes=CLASSES)
    head_cfg.update(head)
    return MODELS.build(dict(type='GSCLIP', backbone=dict(type='_TinyGaussianEncoder'), head=head_cfg))


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    names = [CLASSES[i % 3] for i in range(n)]
    # class c's Gaussians sit around a class-specific offset: learnable in a few steps
    gaussians = [torch.randn(16, 14, generator=g) * 0.1 + CLASSES.index(c) for c in names]
    # the crops' CLIP image embeddings, as LoadCLIPImageEmbedding gives them (unit [D] vectors)
    img_embed = [F.normalize(torch.randn(128, generator=g), dim=0) for _ in range(n)]
    ds = [GSCLIPDataSample(metainfo=dict(class_name=c, crop_key=f'img{i}.jpg|{i}', img_embed_clip=CLIP_ID))
          .set_gt_label(CLASSES.index(c)) for i, c in enumerate(names)]
    return dict(inputs=dict(gaussians=gaussians, img_embed=img_embed), data_samples=ds)


def test_preprocessor_stacks_embeddings_and_tensor_mode():
    model = build()
    data = model.data_preprocessor(batch(), training=False)
    assert data['inputs']['img_embed'].shape == (6, 128) and data['inputs']['gaussians'].shape == (6, 16, 14)
    emb = model(data['inputs'], data['data_samples'], mode='tensor')
    assert emb.shape == (6, 128)
    with pytest.raises(RuntimeError, match='invalid mode "foo"'):
        model(data['inputs'], data['data_samples'], mode='foo')


def test_train_steps_learn_without_running_the_image_tower(monkeypatch):
    model = build()
    monkeypatch.setattr(model.head.clip, 'encode_image', lambda *a: pytest.fail('the image tower ran in training'))
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-2))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert 'head.logit_scale' in trainable and not any('clip' in n for n in trainable)
    clip_before = {k: v.clone() for k, v in model.head.clip.state_dict().items()}
    data = batch()
    first = model.train_step(data, optim)
    assert set(first) == {'loss', 'loss_text', 'loss_img', 'logit_scale'}
    for _ in range(12):
        last = model.train_step(data, optim)
    assert last['loss_text'] < first['loss_text'] and last['loss_img'] < first['loss_img']
    assert all(torch.equal(v, model.head.clip.state_dict()[k]) for k, v in clip_before.items())
    assert not model.head.clip.training

    preds = model.val_step(batch(seed=1))
    assert [p.pred_label.item() for p in preds] == [p.gt_label.item() for p in preds]
    assert preds[0].pred_score.shape == (3, ) and preds[0].embedding.shape == (128, )
    assert preds[0].score_classes == CLASSES and preds[0].clip_untrained


def test_image_loss_uses_the_batchs_embeddings_and_no_img_loss_needs_none():
    model = build()
    data = model.data_preprocessor(batch(), training=True)
    losses = model(**data, mode='loss')
    z = F.normalize(model.extract_feat(data['inputs']), dim=-1)
    ref = 0.5 * info_nce(z, data['inputs']['img_embed'], model.head.temperature_scale())
    assert losses['loss_img'].item() == pytest.approx(ref.item(), rel=1e-5)
    raw = batch()
    points_only = model.data_preprocessor(dict(inputs=dict(gaussians=raw['inputs']['gaussians']),
                                               data_samples=raw['data_samples']), training=True)
    with pytest.raises(ValueError, match='no CLIP image embeddings'):
        model(**points_only, mode='loss')
    text_only = build(loss_img_weight=0.0)  # the no-img-loss ablation
    assert set(text_only(**points_only, mode='loss')) == {'loss_text', 'logit_scale'}
    assert set(text_only.train_step(raw, OptimWrapper(torch.optim.SGD(text_only.parameters(), lr=0.1)))) == \
        {'loss', 'loss_text', 'logit_scale'}


def test_checkpoint_round_trip_through_mmengine(tmp_path):
    model = build()
    model.train_step(batch(), OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5)))
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(model.state_dict(), path)
    ckpt = torch.load(path)  # weights_only
    keys = list(ckpt['state_dict'] if 'state_dict' in ckpt else ckpt)
    assert 'head.logit_scale' in keys and not any('clip' in k for k in keys)
    assert all(k.startswith(('backbone.', 'head.')) for k in keys)

    other = build(clip_seed=0)
    clip_before = {k: v.clone() for k, v in other.head.clip.state_dict().items()}
    with torch.no_grad():
        other.backbone.out.weight.zero_()
    load_checkpoint(other, path, strict=True)
    assert torch.equal(other.backbone.out.weight, model.backbone.out.weight)
    assert other.head.logit_scale.item() == pytest.approx(model.head.logit_scale.item())
    assert all(torch.equal(v, other.head.clip.state_dict()[k]) for k, v in clip_before.items())


def with_misses_at(data, where):
    """Make the samples at ``where`` recorded misses of a test set (no inputs), collated by gsclip_collate."""
    from gsclip_mm.datasets.collate import gsclip_collate
    per_sample = []
    for i, ds in enumerate(data['data_samples']):
        if i in where:
            ds = GSCLIPDataSample(metainfo=dict(ds.metainfo, unfittable='no points in box')).set_gt_label(ds.gt_label)
            per_sample.append(dict(inputs=None, data_samples=ds))
        else:
            per_sample.append(dict(inputs={k: v[i] for k, v in data['inputs'].items()}, data_samples=ds))
    return gsclip_collate(per_sample)


def only(data, keep):
    return dict(inputs={k: [v[i] for i in keep] for k, v in data['inputs'].items()},
                data_samples=[data['data_samples'][i] for i in keep])


def test_predict_sees_no_miss_and_test_step_puts_the_misses_back_in_order():
    model = build()
    model.eval()
    data = with_misses_at(batch(n=4), where={1, 3})
    forwarded = model.data_preprocessor(data, training=False)
    assert set(forwarded) == {'inputs', 'data_samples'} and len(forwarded['data_samples']) == 2
    assert forwarded['inputs']['gaussians'].shape == (2, 16, 14)  # the model's forward: the others only
    preds = model.val_step(data)
    assert [p.crop_key for p in preds] == [f'img{i}.jpg|{i}' for i in range(4)]  # every object, in batch order
    assert preds[1] is data['misses'][1] and preds[3] is data['misses'][3]
    for p in (preds[1], preds[3]):  # a miss: its data sample, no prediction
        assert p.unfittable == 'no points in box' and 'pred_score' not in p and 'embedding' not in p
    ref = model.val_step(only(batch(n=4), keep=[0, 2]))  # the others alone
    for p, r in zip((preds[0], preds[2]), ref):
        assert torch.allclose(p.pred_score, r.pred_score, atol=1e-6) and p.pred_label.item() == r.pred_label.item()
        assert p.score_classes == CLASSES and p.embedding.shape == (128, )
    assert [p.crop_key for p in model.test_step(data)] == [p.crop_key for p in preds]
    # a batch of misses only: the model's batch is empty and predicts nothing; test_step gives the misses
    data = with_misses_at(batch(n=2), where={0, 1})
    assert model(**model.data_preprocessor(data), mode='predict') == []
    assert model.test_step(data) == [data['misses'][0], data['misses'][1]]


def test_with_misses_names_a_batch_that_does_not_add_up():
    from gsclip_mm.models.classifiers.base import with_misses
    assert with_misses(['a', 'b'], dict(inputs={})) == ['a', 'b'] and with_misses(['a'], None) == ['a']
    assert with_misses(['p1', 'p3'], dict(misses={0: 'm0', 2: 'm2'})) == ['m0', 'p1', 'm2', 'p3']
    with pytest.raises(ValueError, match=r'2 predictions and misses at positions \[0, 5\].*batch of 4'):
        with_misses(['p1', 'p3'], dict(misses={0: 'm', 5: 'm'}))  # a prediction too few for position 5


def test_loss_of_a_batch_with_misses_is_the_loss_of_the_others():
    model = build()
    mixed = model.data_preprocessor(with_misses_at(batch(n=4), where={1}), training=True)
    alone = model.data_preprocessor(only(batch(n=4), keep=[0, 2, 3]), training=True)
    got, ref = model(**mixed, mode='loss'), model(**alone, mode='loss')
    for k in ('loss_text', 'loss_img'):
        assert got[k].item() == pytest.approx(ref[k].item(), rel=1e-6)


def test_loss_of_an_empty_batch_is_an_error_that_names_the_cause():
    model = build()
    data = model.data_preprocessor(with_misses_at(batch(n=2), where={0, 1}), training=True)
    with pytest.raises(ValueError, match='GSCLIP: a training batch with no samples.*test_mode=False'):
        model(**data, mode='loss')
