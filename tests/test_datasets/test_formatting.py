"""PackGSCLIPInputs on hand-made Gaussians, a CLIP image embedding and an image crop."""
import numpy as np
import pytest
import torch

from gsclip_mm.registry import TRANSFORMS
from gsclip_mm.structures import GS_DIM, GSCLIPDataSample


def results(**extra):
    g = np.arange(5 * GS_DIM, dtype=np.float64).reshape(5, GS_DIM)  # float64 on purpose: packed as float32
    crop = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)  # [h=4, w=6, 3]
    r = dict(gaussians=g, img_crop=crop, img_path='/d/image/000017.jpg',
             bbox=np.array([54.94983, 233.0936, 187.00673, 360.719], np.float32), gt_label=7,
             class_name='night_stand', sample_idx=17, instance_idx=0, norm_scale=1.5, lidar_path='/d/points/x.bin')
    r.update(extra)
    return r


def test_pack_inputs_and_data_sample():
    embed = np.array([0.6, 0.0, 0.8], np.float32)
    r = results(img_embed=embed, img_embed_clip='GSCLIP-Tiny-64|random(seed=0)')
    out = TRANSFORMS.build(dict(type='PackGSCLIPInputs'))(r)
    assert set(out) == {'inputs', 'data_samples'}
    assert set(out['inputs']) == {'gaussians', 'img_embed', 'norm_scale'}  # the model takes no image
    gs, e = out['inputs']['gaussians'], out['inputs']['img_embed']
    assert gs.dtype == torch.float32 and gs.shape == (5, GS_DIM)
    torch.testing.assert_close(gs, torch.from_numpy(r['gaussians']).float())
    assert e.dtype == torch.float32 and e.tolist() == pytest.approx([0.6, 0.0, 0.8])
    e[0] = 5.0
    assert embed[0] == np.float32(0.6)  # a copy: a cached embedding is never written through the batch
    ds = out['data_samples']
    assert ds.img_embed_clip == 'GSCLIP-Tiny-64|random(seed=0)'
    assert isinstance(ds, GSCLIPDataSample)
    assert ds.gt_label.dtype == torch.long and ds.gt_label.tolist() == [7]
    meta = ds.metainfo
    assert meta['crop_key'] == '/d/image/000017.jpg|54.95,233.09,187.01,360.72'
    assert (meta['class_name'], meta['sample_idx'], meta['instance_idx'], meta['norm_scale']) == \
        ('night_stand', 17, 0, 1.5)
    assert 'lidar_path' not in meta and 'gaussians' not in meta
    # The normalisation radius also travels as a model input, for with_size backbones.
    assert out['inputs']['norm_scale'].tolist() == [1.5]


def test_pack_without_image_embedding_has_gaussians_only():
    r = results()  # an image crop but no img_embed (e.g. the no-image-loss ablation)
    del r['norm_scale']
    out = TRANSFORMS.build(dict(type='PackGSCLIPInputs'))(r)
    assert set(out['inputs']) == {'gaussians'}
    assert 'img_embed_clip' not in out['data_samples']


def test_pack_bad_input():
    pack = TRANSFORMS.build(dict(type='PackGSCLIPInputs'))
    with pytest.raises(ValueError, match=r'\(5, 6\)'):
        pack(results(gaussians=np.zeros((5, 6), np.float32)))
    with pytest.raises(ValueError, match=r'\(0, 14\)'):
        pack(results(gaussians=np.zeros((0, 14), np.float32)))
    with pytest.raises(ValueError, match='img_crop'):
        pack(results(img_crop=np.zeros((4, 6, 3), np.float32)))
    with pytest.raises(ValueError, match=r'img_embed must be a finite \[D\] vector, got shape \(2, 3\)'):
        pack(results(img_embed=np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match='img_embed must be a finite'):
        pack(results(img_embed=np.array([np.nan, 1.0], np.float32)))


def depth_results(pair=True, **extra):
    v = np.arange(2 * 3 * 4 * 4, dtype=np.float64).reshape(2, 3, 4, 4)  # [V=2, 3, S=4, S]; float64: packed float32
    r = results(depth_views=v, **extra)
    if pair:
        r['depth_views_pair'] = v + 0.5
    return r


def test_pack_depth_views_without_gaussians():
    r = depth_results(img_embed=np.array([0.6, 0.0, 0.8], np.float32))
    del r['gaussians']
    out = TRANSFORMS.build(dict(type='PackGSCLIPInputs'))(r)
    assert set(out['inputs']) == {'depth_views', 'depth_views_pair', 'img_embed', 'norm_scale'}
    dv, pair = out['inputs']['depth_views'], out['inputs']['depth_views_pair']
    assert dv.dtype == torch.float32 and dv.shape == (2, 3, 4, 4)
    assert dv[1, 2, 3, 3].item() == 95.0 and pair[1, 2, 3, 3].item() == 95.5  # the last element of each
    dv[0, 0, 0, 0] = -1.0
    assert r['depth_views'][0, 0, 0, 0] == 0.0  # a copy
    assert out['data_samples'].gt_label.tolist() == [7]


def test_pack_depth_views_with_gaussians_present():
    r = depth_results(pair=False)
    assert set(TRANSFORMS.build(dict(type='PackGSCLIPInputs'))(r)['inputs']) == \
        {'depth_views', 'gaussians', 'norm_scale'}
    # a depth-map model's batches need no fixed Gaussian count: leave them out
    pack = TRANSFORMS.build(dict(type='PackGSCLIPInputs', pack_gaussians=False))
    assert set(pack(r)['inputs']) == {'depth_views', 'norm_scale'}
    assert 'pack_gaussians=False' in repr(pack)


def test_pack_depth_views_bad_input():
    pack = TRANSFORMS.build(dict(type='PackGSCLIPInputs'))
    with pytest.raises(ValueError, match=r'depth_views must be a finite \[V, 3, S, S\] array, got shape \(3, 4, 4\)'):
        pack(results(depth_views=np.zeros((3, 4, 4), np.float32)))
    with pytest.raises(ValueError, match='depth_views_pair .* differ'):
        pack(depth_results(pair=False, depth_views_pair=np.zeros((3, 3, 4, 4), np.float32)))
    r = results(depth_views_pair=np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(KeyError, match='no "depth_views"'):
        pack(r)
    r = results()
    del r['gaussians']
    with pytest.raises(KeyError, match='needs "gaussians"'):
        pack(r)
    r = results()
    with pytest.raises(KeyError, match='needs "depth_views"'):
        TRANSFORMS.build(dict(type='PackGSCLIPInputs', pack_gaussians=False))(r)
