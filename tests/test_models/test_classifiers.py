"""GSCLIP: modes, training with cached CLIP image embeddings, checkpoints."""
import pytest
import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint

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


def build(tmp_path, **head):
    torch.manual_seed(0)
    head_cfg = dict(type='FrozenCLIPHead', templates=('a point cloud of a {}.', ), eval_classes=CLASSES,
                    img_cache_dir=str(tmp_path / 'cache'))
    head_cfg.update(head)
    return MODELS.build(dict(type='GSCLIP', backbone=dict(type='_TinyGaussianEncoder'), head=head_cfg))


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    names = [CLASSES[i % 3] for i in range(n)]
    # class c's Gaussians sit around a class-specific offset: learnable in a few steps
    gaussians = [torch.randn(16, 14, generator=g) * 0.1 + CLASSES.index(c) for c in names]
    imgs = [torch.randint(0, 256, (3, 20 + i, 30), dtype=torch.uint8, generator=g) for i in range(n)]
    ds = [GSCLIPDataSample(metainfo=dict(class_name=c, crop_key=f'img{i}.jpg|{i}')).set_gt_label(CLASSES.index(c))
          for i, c in enumerate(names)]
    return dict(inputs=dict(gaussians=gaussians, img=imgs), data_samples=ds)


def test_preprocessor_follows_clip_and_tensor_mode(tmp_path):
    model = build(tmp_path)
    assert model.data_preprocessor.img_size == model.head.clip_image_size == 64
    assert model.head.img_preprocess_id == model.data_preprocessor.image_signature()
    data = model.data_preprocessor(batch(), training=False)
    assert data['inputs']['imgs'].shape == (6, 3, 64, 64)
    emb = model(data['inputs'], data['data_samples'], mode='tensor')
    assert emb.shape == (6, 128)
    with pytest.raises(RuntimeError, match='invalid mode "foo"'):
        model(data['inputs'], data['data_samples'], mode='foo')


def test_train_steps_learn_and_encode_crops_once(tmp_path):
    model = build(tmp_path)
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-2))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert 'head.logit_scale' in trainable and not any('clip' in n for n in trainable)
    clip_before = {k: v.clone() for k, v in model.head.clip.state_dict().items()}
    data = batch()
    first = model.train_step(data, optim)
    assert set(first) == {'loss', 'loss_text', 'loss_img', 'logit_scale'}
    assert model.head.num_images_encoded == 6
    for _ in range(12):
        last = model.train_step(data, optim)
    assert model.head.num_images_encoded == 6  # cached: the image tower never runs again
    assert last['loss_text'] < first['loss_text']
    assert all(torch.equal(v, model.head.clip.state_dict()[k]) for k, v in clip_before.items())
    assert not model.head.clip.training

    preds = model.val_step(batch(seed=1))
    assert [p.pred_label.item() for p in preds] == [p.gt_label.item() for p in preds]
    assert preds[0].pred_score.shape == (3, ) and preds[0].embedding.shape == (128, )
    assert preds[0].score_classes == CLASSES and preds[0].clip_untrained


def test_loss_without_images_uses_the_cache(tmp_path):
    model = build(tmp_path)
    data = batch()
    model.train_step(data, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0)))
    points_only = dict(inputs=dict(gaussians=data['inputs']['gaussians']), data_samples=data['data_samples'])
    out = model.data_preprocessor(points_only, training=True)
    losses = model(**out, mode='loss')
    assert losses['loss_img'] > 0
    text_only = build(tmp_path, loss_img_weight=0.0)
    assert set(text_only(**out, mode='loss')) == {'loss_text', 'logit_scale'}


def test_checkpoint_round_trip_through_mmengine(tmp_path):
    model = build(tmp_path)
    model.train_step(batch(), OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5)))
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(model.state_dict(), path)
    ckpt = torch.load(path)  # weights_only
    keys = list(ckpt['state_dict'] if 'state_dict' in ckpt else ckpt)
    assert 'head.logit_scale' in keys and not any('clip' in k for k in keys)
    assert all(k.startswith(('backbone.', 'head.')) for k in keys)

    other = build(tmp_path, clip_seed=0)
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


def test_predict_skips_unfittable_objects(tmp_path):
    model = build(tmp_path)
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


def test_loss_leaves_unfittable_objects_out(tmp_path):
    model = build(tmp_path)
    data = batch(n=4)
    mixed = model.data_preprocessor(with_unfittable(data, where={1}), training=True)
    alone = model.data_preprocessor(only(batch(n=4), keep=[0, 2, 3]), training=True)
    got, ref = model(**mixed, mode='loss'), model(**alone, mode='loss')
    for k in ('loss_text', 'loss_img'):
        assert got[k].item() == pytest.approx(ref[k].item(), rel=1e-6)


def test_loss_of_an_all_unfittable_batch_is_zero_and_backpropagates(tmp_path):
    model = build(tmp_path)
    data = model.data_preprocessor(with_unfittable(batch(n=2), where={0, 1}), training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_text', 'loss_img', 'logit_scale'}
    total = losses['loss_text'] + losses['loss_img']
    assert total.item() == 0.0 and total.grad_fn is not None
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and not g.any() for g in grads)
