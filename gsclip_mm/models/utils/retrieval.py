"""Cross-modal retrieval by cosine similarity (text -> 3D, 3D -> image)."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F


def cosine_similarity_matrix(query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """``[Q, D] x [G, D] -> [Q, G]`` cosine similarities."""
    assert query.ndim == 2 and gallery.ndim == 2 and query.shape[1] == gallery.shape[1], \
        f'query {tuple(query.shape)} and gallery {tuple(gallery.shape)} must be [Q, D] and [G, D]'
    return F.normalize(query, dim=-1) @ F.normalize(gallery, dim=-1).t()


def topk_retrieval(query: torch.Tensor, gallery: torch.Tensor, topk: int = 5) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` most similar gallery rows of each query: ``(scores [Q, k], indices [Q, k])``.

    ``k = min(topk, G)``; scores are cosine similarities, best first.
    """
    sim = cosine_similarity_matrix(query, gallery)  # [Q, G]
    return sim.topk(min(topk, sim.shape[1]), dim=1)


def retrieval_ranks(query: torch.Tensor, gallery: torch.Tensor,
                    target: Optional[torch.Tensor] = None) -> torch.Tensor:
    """0-based rank of each query's true gallery item under cosine similarity.

    Args:
        query: ``[Q, D]``; gallery: ``[G, D]``.
        target: ``[Q]`` long, index of each query's match in the gallery
            (default ``arange(Q)``: paired rows, e.g. 3D i <-> image i).

    Returns:
        ``[Q]`` long; 0 means retrieved first. Ties count against the query
        (``(ranks < k).float().mean()`` is recall@k).
    """
    sim = cosine_similarity_matrix(query, gallery)  # [Q, G]
    if target is None:
        assert query.shape[0] == gallery.shape[0], 'paired retrieval needs Q == G'
        target = torch.arange(query.shape[0], device=sim.device)
    true = sim.gather(1, target.view(-1, 1))  # [Q, 1]
    beaten = sim >= true  # [Q, G]
    beaten.scatter_(1, target.view(-1, 1), False)
    return beaten.sum(dim=1)
