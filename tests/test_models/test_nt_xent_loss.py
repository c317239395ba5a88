"""NTXentLoss (SimCLR's NT-Xent, CLIP2Point's both terms) against hand-worked values and a loop reference."""
import math

import pytest
import torch
import torch.nn.functional as F

from gsclip_mm.models.losses import nt_xent
from gsclip_mm.registry import MODELS


def _nt_xent_reference(a, b, t):
    """Row by row, as SimCLR's paper writes it: l(i, j) = -log(exp(s_ij / t) / sum_{k != i} exp(s_ik / t))."""
    z = [F.normalize(r, dim=0) for r in torch.cat([a, b])]
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = i + n if i < n else i - n
        denom = sum(torch.exp(z[i] @ z[k] / t) for k in range(2 * n) if k != i)
        total = total - torch.log(torch.exp(z[i] @ z[j] / t) / denom)
    return total / (2 * n)


def test_hand_worked_identical_views():
    # a = b = [e1, e2], t = 1. Row e1 (of a): positive e1 (of b), sim 1; negatives e2 (a), e2 (b), sim 0 each:
    # -log(e / (e + 1 + 1)) = log(1 + 2 / e) = log(1.7357589) = 0.5514447; all four rows alike.
    e = torch.eye(2)
    assert nt_xent(e, e.clone(), temperature=1.0).item() == pytest.approx(0.5514447, abs=1e-6)


def test_hand_worked_swapped_views_with_temperature():
    # a = [e1, e2], b = [e2, e1], t = 0.5. Row e1 (a0): positive b0 = e2 (sim 0 -> 0), negatives a1 = e2 (0 -> 0)
    # and b1 = e1 (1 -> 1 / 0.5 = 2): -log(1 / (1 + 1 + e^2)) = log(9.3890561) = 2.2395449; every row alike.
    a = torch.eye(2)
    b = torch.eye(2).flip(0)
    assert nt_xent(a, b, temperature=0.5).item() == pytest.approx(2.2395449, abs=1e-6)


def test_hand_worked_unnormalised_inputs_are_normalised():
    # Scaling a row changes nothing: same numbers as the first example.
    e = torch.eye(2)
    assert nt_xent(3 * e, torch.tensor([[0.5, 0.0], [0.0, 7.0]]), 1.0).item() == pytest.approx(
        math.log(1 + 2 / math.e), abs=1e-6)


@pytest.mark.parametrize('shape,t', [((1, 3), 0.07), ((4, 8), 0.07), ((5, 16), 0.5)])
def test_matches_reference_forward_and_backward(shape, t):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(*shape, generator=g, dtype=torch.float64).float().requires_grad_()
    b = torch.randn(*shape, generator=g, dtype=torch.float64).float().requires_grad_()
    loss, ref = nt_xent(a, b, t), _nt_xent_reference(a, b, t)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    ga, gb = torch.autograd.grad(loss, (a, b))
    ra, rb = torch.autograd.grad(ref, (a, b))
    torch.testing.assert_close(ga, ra, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gb, rb, rtol=1e-4, atol=1e-6)


def test_symmetric_and_registered():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    loss = MODELS.build(dict(type='NTXentLoss', temperature=0.2))
    assert loss(a, b).item() == pytest.approx(loss(b, a).item(), abs=1e-6)
    assert loss(a, b).item() == pytest.approx(nt_xent(a, b, 0.2).item())
    assert MODELS.build(dict(type='NTXentLoss')).temperature == 0.07  # CLIP2Point's


def test_bad_arguments():
    with pytest.raises(ValueError, match='temperature'):
        MODELS.build(dict(type='NTXentLoss', temperature=0.0))
    with pytest.raises(AssertionError, match=r'\(2, 3\)'):
        nt_xent(torch.zeros(2, 3), torch.zeros(3, 3))
