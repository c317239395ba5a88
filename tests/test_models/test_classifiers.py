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


def test_shape_to_image_ranks_on_the_model():
    model = build()
    img = torch.eye(128)[:3]
    assert model.shape_to_image_ranks(img[[0, 2, 1]], img).tolist() == [0, 2, 2]
    scores, idx = model.text_to_shape(['chair'], model.head.text_embeddings(['bed', 'chair', 'bed']), topk=1)
    assert idx.tolist() == [[1]] and scores.item() == pytest.approx(1.0, abs=1e-5)


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


def with_unfittable(data, where):
    """Replace the samples at ``where`` by unfittable objects, collated as gsclip_collate does."""
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


def test_predict_skips_unfittable_objects():
    model = build()
    model.eval()
    data = batch(n=4)
    preds = model.val_step(with_unfittable(data, where={1, 3}))
    assert [p.metainfo.get('unfittable') for p in preds] == [None, 'no points in box', None, 'no points in box']
    ref = model.val_step(only(batch(n=4), keep=[0, 2]))  # the fittable ones alone
    for p, r in zip([preds[0], preds[2]], ref):
        assert torch.allclose(p.pred_score, r.pred_score, atol=1e-6) and p.pred_label.item() == r.pred_label.item()
    for p in (preds[1], preds[3]):
        assert p.pred_score.shape == (3, ) and p.pred_score.isnan().all() and p.pred_label.tolist() == [-1]
        assert 'embedding' not in p and p.score_classes == CLASSES
    # a batch with no fittable object at all
    preds = model.val_step(with_unfittable(batch(n=2), where={0, 1}))
    assert len(preds) == 2 and all(p.pred_label.tolist() == [-1] for p in preds)


def test_loss_leaves_unfittable_objects_out():
    model = build()
    data = batch(n=4)
    mixed = model.data_preprocessor(with_unfittable(data, where={1}), training=True)
    alone = model.data_preprocessor(only(batch(n=4), keep=[0, 2, 3]), training=True)
    got, ref = model(**mixed, mode='loss'), model(**alone, mode='loss')
    for k in ('loss_text', 'loss_img'):
        assert got[k].item() == pytest.approx(ref[k].item(), rel=1e-6)


def test_loss_of_an_all_unfittable_batch_is_zero_and_backpropagates():
    model = build()
    data = model.data_preprocessor(with_unfittable(batch(n=2), where={0, 1}), training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_text', 'loss_img', 'logit_scale'}
    total = losses['loss_text'] + losses['loss_img']
    assert total.item() == 0.0 and total.grad_fn is not None
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and not g.any() for g in grads)
