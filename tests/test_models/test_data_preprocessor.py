"""GSCLIPDataPreprocessor: stacking, aspect-keeping resize + pad, CLIP normalisation."""
import pytest
import torch

from gsclip_mm.models.data_preprocessors.gsclip_preprocessor import CLIP_MEAN, CLIP_STD, resize_pad_square
from gsclip_mm.registry import MODELS
from gsclip_mm.structures import GSCLIPDataSample


def build(**kwargs):
    return MODELS.build(dict(type='GSCLIPDataPreprocessor', **kwargs))


def test_resize_pad_square_by_hand():
    # 2x4 image already fits 4 wide: no resize, one padded row above and below
    img = torch.full((3, 2, 4), 100.0)
    out = resize_pad_square(img, 4)
    assert out.shape == (3, 4, 4)
    assert torch.equal(out[:, 1:3], img) and out[:, 0].abs().sum() == 0 and out[:, 3].abs().sum() == 0
    # 8x4 shrinks to 4x2 (a constant stays constant), padded one column left and right
    out = resize_pad_square(torch.full((3, 8, 4), 50.0), 4, pad_value=7.0)
    assert torch.allclose(out[:, :, 1:3], torch.full((3, 4, 2), 50.0))
    assert torch.equal(out[:, :, 0], torch.full((3, 4), 7.0)) and torch.equal(out[:, :, 3], torch.full((3, 4), 7.0))
    # 1x2 grows to 2x4: bilinear on a horizontal ramp keeps the left half below the right half
    out = resize_pad_square(torch.tensor([[[0.0, 10.0]]]).expand(3, 1, 2), 4)
    assert out.shape == (3, 4, 4) and out[0, 1, 0] < out[0, 1, 3] and out[0, 0].abs().sum() == 0


def test_forward_stacks_gaussians_and_normalises_crops():
    pre = build(img_size=16)
    g = [torch.rand(5, 14), torch.rand(5, 14)]
    imgs = [torch.full((3, 10, 20), 255, dtype=torch.uint8), torch.zeros((3, 30, 15), dtype=torch.uint8)]
    ds = [GSCLIPDataSample(), GSCLIPDataSample()]
    out = pre(dict(inputs=dict(gaussians=g, img=imgs), data_samples=ds))
    x, im = out['inputs']['gaussians'], out['inputs']['imgs']
    assert x.shape == (2, 5, 14) and x.dtype == torch.float32 and torch.equal(x[1], g[1])
    assert im.shape == (2, 3, 16, 16) and im.dtype == torch.float32
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    white, black = (1 - mean) / std, (0 - mean) / std  # [3]
    # crop 0 (10x20) -> 8x16 content in rows 4..11, black padding above and below
    assert torch.allclose(im[0, :, 4:12, :], white.view(3, 1, 1).expand(3, 8, 16), atol=1e-5)
    assert torch.allclose(im[0, :, :4, :], black.view(3, 1, 1).expand(3, 4, 16), atol=1e-5)
    assert torch.allclose(im[1], black.view(3, 1, 1).expand(3, 16, 16), atol=1e-5)
    assert out['data_samples'] is not None and len(out['data_samples']) == 2


def test_batch_without_images_and_list_of_dicts():
    pre = build()
    out = pre(dict(inputs=[dict(gaussians=torch.ones(4, 14)), dict(gaussians=torch.zeros(4, 14))]))
    assert set(out['inputs']) == {'gaussians'} and out['inputs']['gaussians'].shape == (2, 4, 14)


def test_bad_batches_are_named():
    pre = build()
    with pytest.raises(ValueError, match='per-sample shapes differ'):
        pre(dict(inputs=dict(gaussians=[torch.ones(4, 14), torch.ones(5, 14)])))
    with pytest.raises(ValueError, match=r'image crop 0 must be a \[3, h, w\]'):
        pre(dict(inputs=dict(gaussians=[torch.ones(4, 14)], img=[torch.ones(4, 4, 3, dtype=torch.uint8)])))
    with pytest.raises(KeyError, match='gaussians'):
        pre(dict(inputs=dict(foo=[torch.ones(1)])))


def test_follows_the_clip_unless_told_otherwise():
    pre = build()
    pre.set_clip_input(64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert pre.img_size == 64 and pre.mean == (0.5, 0.5, 0.5)
    out = pre(dict(inputs=dict(gaussians=[torch.ones(2, 14)], img=[torch.full((3, 8, 8), 255, dtype=torch.uint8)])))
    assert torch.allclose(out['inputs']['imgs'], torch.full((1, 3, 64, 64), 2.0))  # (1 - .5) / .25
    fixed = build(img_size=32, mean=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match='CLIP expects 64x64'):
        fixed.set_clip_input(64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    fixed = build(mean=(0.1, 0.2, 0.3))
    fixed.set_clip_input(64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert fixed.mean == (0.1, 0.2, 0.3) and fixed.std == (0.25, 0.25, 0.25)
    assert 'size=64' in fixed.image_signature() and fixed.image_signature() != pre.image_signature()


def unfittable_sample():
    return GSCLIPDataSample(metainfo=dict(unfittable='no points in box'))


def test_unfittable_samples_have_no_input_rows():
    pre = build(img_size=16)
    g = [torch.rand(5, 14), torch.rand(5, 14)]
    ds = [unfittable_sample(), GSCLIPDataSample(), GSCLIPDataSample()]
    out = pre(dict(inputs=dict(gaussians=g), data_samples=ds))
    assert out['inputs']['gaussians'].shape == (2, 5, 14)
    assert [d.metainfo.get('unfittable') for d in out['data_samples']] == ['no points in box', None, None]
    # per-sample dicts: an unfittable object's None is dropped
    out = pre(dict(inputs=[None, dict(gaussians=g[0]), dict(gaussians=g[1])], data_samples=ds))
    assert torch.equal(out['inputs']['gaussians'][1], g[1])
    # nothing fittable: no inputs at all
    out = pre(dict(inputs={}, data_samples=[unfittable_sample()] * 2))
    assert out['inputs'] == {} and len(out['data_samples']) == 2


def test_input_rows_must_match_the_fittable_samples():
    pre = build()
    with pytest.raises(ValueError, match=r'3 input rows but 2 of its 3 data samples are fittable.*gsclip_collate'):
        pre(dict(inputs=dict(gaussians=[torch.ones(4, 14)] * 3),
                 data_samples=[unfittable_sample(), GSCLIPDataSample(), GSCLIPDataSample()]))
