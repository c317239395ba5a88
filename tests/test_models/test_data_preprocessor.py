"""GSCLIPDataPreprocessor: stacking Gaussians and CLIP image embeddings, unfittable rows, named errors."""
import pytest
import torch

from gsclip_mm.registry import MODELS
from gsclip_mm.structures import GSCLIPDataSample


def build(**kwargs):
    return MODELS.build(dict(type='GSCLIPDataPreprocessor', **kwargs))


def test_forward_stacks_gaussians_embeddings_and_sizes():
    pre = build()
    g = [torch.rand(5, 14), torch.rand(5, 14).double()]
    e = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.6, 0.8])]
    s = [torch.tensor([0.5]), torch.tensor([2.0])]
    ds = [GSCLIPDataSample(), GSCLIPDataSample()]
    out = pre(dict(inputs=dict(gaussians=g, img_embed=e, norm_scale=s), data_samples=ds))
    x = out['inputs']
    assert set(x) == {'gaussians', 'img_embed', 'norm_scale'}
    assert x['gaussians'].shape == (2, 5, 14) and x['gaussians'].dtype == torch.float32
    assert torch.equal(x['gaussians'][1], g[1].float())
    assert x['img_embed'].tolist() == [[1.0, 0.0, 0.0], [0.0, pytest.approx(0.6), pytest.approx(0.8)]]
    assert x['norm_scale'].shape == (2, 1) and x['norm_scale'][:, 0].tolist() == [0.5, 2.0]
    assert len(out['data_samples']) == 2  # cast to the device (copies), in order


def test_batch_without_embeddings_and_list_of_dicts():
    pre = build()
    out = pre(dict(inputs=[dict(gaussians=torch.ones(4, 14)), dict(gaussians=torch.zeros(4, 14))]))
    assert set(out['inputs']) == {'gaussians'} and out['inputs']['gaussians'].shape == (2, 4, 14)
    assert out['inputs']['gaussians'][0].sum().item() == 56 and out['inputs']['gaussians'][1].sum().item() == 0


def test_bad_batches_are_named():
    pre = build()
    with pytest.raises(ValueError, match='per-sample shapes differ'):
        pre(dict(inputs=dict(gaussians=[torch.ones(4, 14), torch.ones(5, 14)])))
    with pytest.raises(ValueError, match=r'raw image crops \("img"\).*LoadCLIPImageEmbedding'):
        pre(dict(inputs=dict(gaussians=[torch.ones(4, 14)], img=[torch.ones(3, 4, 4, dtype=torch.uint8)])))
    with pytest.raises(KeyError, match='gaussians'):
        pre(dict(inputs=dict(foo=[torch.ones(1)])))


def unfittable_sample():
    return GSCLIPDataSample(metainfo=dict(unfittable='no points in box'))


def test_unfittable_samples_have_no_input_rows():
    pre = build()
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
