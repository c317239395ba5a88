"""InfoNCELoss: by hand, against open_clip's ClipLoss where they coincide, and its same-group masking."""
import math

import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from gsclip_mm.models.losses import info_nce
from gsclip_mm.registry import MODELS


def ce(row, t):
    """Cross-entropy of logits ``row`` for target ``t``, by hand."""
    return -row[t] + math.log(sum(math.exp(v) for v in row))


def unit_rows(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_two_orthogonal_pairs():
    a = torch.eye(2)
    # logits = I: each row's CE is -log(e / (e + 1)) = log(1 + e^-1), both directions alike
    assert info_nce(a, a, torch.tensor(1.0)).item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    assert info_nce(a, a, torch.tensor(2.0)).item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_three_vectors_by_hand_with_same_group_mask():
    s = 1 / math.sqrt(2)
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [s, s]])
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # texts; rows 0 and 1 share a class
    assert torch.allclose(a @ b.t(), torch.tensor([[1, 1, 0], [0, 0, 1], [s, s, s]]))
    # no mask: plain CLIP InfoNCE, 3D->text rows and text->3D columns
    rows = [ce([1, 1, 0], 0), ce([0, 0, 1], 1), ce([s, s, s], 2)]
    cols = [ce([1, 0, s], 0), ce([1, 0, s], 1), ce([0, 1, s], 2)]
    loss = MODELS.build(dict(type='InfoNCELoss'))
    assert loss(a, b, torch.tensor(1.0)).item() == pytest.approx(0.5 * (sum(rows) + sum(cols)) / 3, rel=1e-6)
    one_way = MODELS.build(dict(type='InfoNCELoss', symmetric=False))
    assert one_way(a, b, torch.tensor(1.0)).item() == pytest.approx(sum(rows) / 3, rel=1e-6)
    # groups 0, 0, 1: entries (0,1) and (1,0) are dropped from both softmaxes
    rows_m = [ce([1, 0], 0), ce([0, 1], 0), ce([s, s, s], 2)]
    cols_m = [ce([1, s], 0), ce([0, s], 0), ce([0, 1, s], 2)]
    groups = torch.tensor([0, 0, 1])
    expected = 0.5 * (sum(rows_m) + sum(cols_m)) / 3
    assert loss(a, b, torch.tensor(1.0), groups).item() == pytest.approx(expected, rel=1e-6)
    # mask_same_group=False ignores the groups: CLIP's plain loss
    plain = MODELS.build(dict(type='InfoNCELoss', mask_same_group=False))
    expected = 0.5 * (sum(rows) + sum(cols)) / 3
    assert plain(a, b, torch.tensor(1.0), groups).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize('groups', [None, torch.arange(6)], ids=['no-groups', 'distinct-groups'])
def test_equals_open_clip_clip_loss_without_masking(groups):
    """Symmetric and with nothing masked, ours is open_clip's ClipLoss on the same features: value and gradient."""
    a, b = unit_rows(6, 16, 0).requires_grad_(), unit_rows(6, 16, 1).requires_grad_()
    scale = torch.tensor(14.0)
    ours = MODELS.build(dict(type='InfoNCELoss'))(a, b, scale, groups)
    ref = ClipLoss()(a, b, scale)  # a as the "image" features, b as the "text" features
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    ga, gb = torch.autograd.grad(ours, (a, b))
    ra, rb = torch.autograd.grad(ref, (a, b))
    torch.testing.assert_close(ga, ra, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(gb, rb, rtol=1e-5, atol=1e-7)


def test_same_group_masking_differs_from_clip_loss_and_lowers_the_loss():
    a = unit_rows(4, 8, 2)
    b = unit_rows(4, 8, 3)
    b = torch.stack([b[0], b[0], b[1], b[2]])  # two objects of one class share its text embedding
    scale = torch.tensor(10.0)
    masked = MODELS.build(dict(type='InfoNCELoss'))(a, b, scale, torch.tensor([0, 0, 1, 2]))
    clip = ClipLoss()(a, b, scale)
    # the plain loss counts the twin text as a negative (an unwinnable one: equal logits), ours does not
    assert masked.item() < clip.item() - 0.05
    # with the twin masked, rows 0 and 1 see only [own, b2, b3]: a 3-way softmax, as if the twin were absent
    logits = scale * a @ b.t()
    keep = [[0, 2, 3], [1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]
    rows = [F.cross_entropy(logits[i, k][None], torch.tensor([k.index(i)])) for i, k in enumerate(keep)]
    cols = [F.cross_entropy(logits.t()[i, k][None], torch.tensor([k.index(i)])) for i, k in enumerate(keep)]
    assert masked.item() == pytest.approx(0.5 * (sum(rows) + sum(cols)).item() / 4, rel=1e-6)


def test_bad_shapes_are_named():
    with pytest.raises(AssertionError, match=r'\(3, 4\).*\(3, 5\)'):
        info_nce(torch.zeros(3, 4), torch.zeros(3, 5), torch.tensor(1.0))
    with pytest.raises(AssertionError, match=r'groups must be \[B\]'):
        info_nce(torch.eye(3), torch.eye(3), torch.tensor(1.0), groups=torch.zeros(2, dtype=torch.long))
