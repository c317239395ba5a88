import numpy as np
import pytest
import torch

from gsclip_mm.gaussians.ply import SH_C0, PLYError, gaussians_to_ply, parse_ply, ply_to_gaussians


def make_gaussians(n=7, seed=0):
    rng = np.random.default_rng(seed)
    g = np.empty((n, 14), np.float32)
    g[:, :3] = rng.normal(size=(n, 3))
    g[:, 3:6] = rng.uniform(0.05, 0.95, (n, 3))
    g[:, 6] = rng.uniform(0.05, 0.95, n)
    g[:, 7:10] = rng.uniform(0.001, 0.2, (n, 3))
    q = rng.normal(size=(n, 4))
    g[:, 10:] = q / np.linalg.norm(q, axis=1, keepdims=True)
    return g


def test_roundtrip_and_standard_layout():
    g = make_gaussians()
    data = gaussians_to_ply(g, dict(psnr=30.5))
    header = data[:data.index(b'end_header')].decode().splitlines()
    props = [line.split()[-1] for line in header if line.startswith('property')]
    assert props == ['x', 'y', 'z', 'f_dc_0', 'f_dc_1', 'f_dc_2', 'opacity', 'scale_0', 'scale_1', 'scale_2',
                     'rot_0', 'rot_1', 'rot_2', 'rot_3']
    assert 'element vertex 7' in header
    table, meta, _ = parse_ply(data)
    # stored with the 3DGS activations undone
    np.testing.assert_allclose(table[:, 3:6], (g[:, 3:6] - 0.5) / SH_C0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(table[:, 6], np.log(g[:, 6] / (1 - g[:, 6])), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(table[:, 7:10], np.log(g[:, 7:10]), rtol=1e-6)
    back, meta = ply_to_gaussians(data)
    assert meta == dict(psnr=30.5)
    np.testing.assert_allclose(back, g, rtol=1e-5, atol=1e-6)


def test_body_equals_gsplat_exporter():
    from gsplat import export_splats
    g = make_gaussians(5, seed=1)
    t = torch.from_numpy(g)
    op = t[:, 6].double()
    ref = export_splats(t[:, :3], t[:, 7:10].log(), t[:, 10:], (op.log() - torch.log1p(-op)).float(),
                        ((t[:, 3:6] - 0.5) / SH_C0)[:, None], torch.zeros(5, 0, 3), format='ply')
    assert gaussians_to_ply(g) == ref


def test_truncated_and_garbage():
    data = gaussians_to_ply(make_gaussians())
    with pytest.raises(PLYError, match='truncated'):
        ply_to_gaussians(data[:-5], 'x.ply')
    with pytest.raises(PLYError, match='not a PLY'):
        ply_to_gaussians(b'hello', 'x.ply')
