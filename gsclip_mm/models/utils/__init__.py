from .retrieval import cosine_similarity_matrix, retrieval_ranks, topk_retrieval

__all__ = ['cosine_similarity_matrix', 'retrieval_ranks', 'topk_retrieval']
