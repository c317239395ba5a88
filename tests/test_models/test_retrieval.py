"""Retrieval helpers by hand: cosine ranks with ties against the query, top-k."""
import pytest
import torch

from gsclip_mm.models.utils import cosine_similarity_matrix, retrieval_ranks, topk_retrieval


def test_retrieval_ranks_by_hand():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    g = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.9]])
    # query 0: its match g0 has cos 0, g1 ties it (ties count against) and g2 (0.74) beats it -> rank 2;
    # query 1: g1 = g0 tie at cos 1 -> rank 1; query 2: g2 (cos 0.9997) beats g0/g1 (0.707) -> rank 0
    assert retrieval_ranks(q, g).tolist() == [2, 1, 0]
    assert retrieval_ranks(q, g, torch.tensor([2, 0, 2])).tolist() == [0, 1, 0]


def test_topk_and_cosine_by_hand():
    q = torch.tensor([[2.0, 0.0]])
    g = torch.tensor([[0.0, 3.0], [1.0, 1.0], [5.0, 0.0], [-1.0, 0.0]])
    assert torch.allclose(cosine_similarity_matrix(q, g), torch.tensor([[0.0, 2 ** -0.5, 1.0, -1.0]]))
    scores, idx = topk_retrieval(q, g, topk=2)
    assert idx.tolist() == [[2, 1]] and scores[0].tolist() == pytest.approx([1.0, 2 ** -0.5])
    assert topk_retrieval(q, g, topk=10)[1].shape == (1, 4)  # k is capped at the gallery size
    with pytest.raises(AssertionError, match=r'\[Q, D\] and \[G, D\]'):
        cosine_similarity_matrix(q, torch.zeros(2, 3))
