"""GSCLIPDataPreprocessor: stacking Gaussians and CLIP image embeddings, what reaches the model, named errors."""
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


def test_only_inputs_and_data_samples_reach_the_model():
    """``gsclip_collate``'s ``misses`` (a test set's recorded misses) stay in the data batch, for the metric."""
    from gsclip_mm.datasets.collate import gsclip_collate
    miss = dict(inputs=None, data_samples=GSCLIPDataSample(metainfo=dict(sample_idx=0)))
    fitted = [dict(inputs=dict(gaussians=torch.full((5, 14), float(i))),
                   data_samples=GSCLIPDataSample(metainfo=dict(sample_idx=i))) for i in (1, 2)]
    pre = build()
    out = pre(gsclip_collate([miss] + fitted))
    assert set(out) == {'inputs', 'data_samples'}
    assert out['inputs']['gaussians'][:, 0, 0].tolist() == [1.0, 2.0]
    assert [d.sample_idx for d in out['data_samples']] == [1, 2]
    # a batch of misses only: an empty batch
    out = pre(gsclip_collate([miss, miss]))
    assert out == dict(inputs={}, data_samples=[])


def test_input_rows_must_match_the_data_samples():
    pre = build()
    with pytest.raises(ValueError, match=r'3 input rows but 2 data samples.*gsclip_collate'):
        pre(dict(inputs=dict(gaussians=[torch.ones(4, 14)] * 3), data_samples=[GSCLIPDataSample()] * 2))
