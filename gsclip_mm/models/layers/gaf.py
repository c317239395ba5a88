"""The Gaussian-Aware Fusion (GAF) branches of GS-CLIP (section 4.2)."""
from typing import Optional, Tuple

import torch
from torch import nn

from gsclip_mm.ops import furthest_point_sample, gather_points, group_points, knn
from .shared_mlp import SharedMLP


class GaussianAwareFusion(nn.Module):
    """The Gaussian-Aware Fusion branches (GS-CLIP section 4.2).

    The Gaussians are divided into ``num_groups`` groups (FPS centres and
    their ``group_size`` nearest neighbours); a mini-PointNet embeds each
    group's (offset, Gaussian features) into a token. A convolution branch
    (1x1 convolutions over the tokens, max-pooled) gives the global feature;
    a Transformer over the tokens (plus an embedding of the group centres,
    max-pooled) gives the shape feature. Both are projected to
    ``out_channels`` so the backbone can add them to the PointNet++ feature
    (:class:`gsclip_mm.models.backbones.PointNet2GAF`, eq. 11).

    Args:
        in_channels (int): per-Gaussian feature width C (besides xyz).
        out_channels (int): width of the two returned features.
        num_groups, group_size, embed_dims, depth, num_heads, mlp_ratio,
        dropout: grouping and Transformer sizes.
    """

    def __init__(self, in_channels: int, out_channels: int, num_groups: int = 64, group_size: int = 32,
                 embed_dims: int = 128, depth: int = 2, num_heads: int = 4, mlp_ratio: float = 2.0,
                 dropout: float = 0.0):
        super().__init__()
        self.num_groups = num_groups
        self.group_size = group_size
        self.group_encoder = SharedMLP(in_channels + 3, [embed_dims // 2, embed_dims])
        self.conv_branch = SharedMLP(embed_dims, [embed_dims, 2 * embed_dims])
        self.conv_proj = nn.Linear(2 * embed_dims, out_channels)
        self.pos_embed = nn.Sequential(nn.Linear(3, embed_dims), nn.GELU(), nn.Linear(embed_dims, embed_dims))
        layer = nn.TransformerEncoderLayer(embed_dims, num_heads, int(embed_dims * mlp_ratio), dropout,
                                           activation='gelu', batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(embed_dims),
                                                 enable_nested_tensor=False)
        self.shape_proj = nn.Linear(embed_dims, out_channels)

    def forward(self, xyz: torch.Tensor, features: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Global and shape features of the Gaussians.

        Args:
            xyz (Tensor): ``[B, N, 3]`` positions.
            features (Tensor | None): ``[B, N, C]`` Gaussian features.

        Returns:
            tuple: global feature ``[B, out_channels]`` and shape feature
            ``[B, out_channels]``.
        """
        num_groups = min(self.num_groups, xyz.shape[1])
        group_size = min(self.group_size, xyz.shape[1])
        center = gather_points(xyz, furthest_point_sample(xyz.detach(), num_groups))  # [B, G, 3]
        idx = knn(group_size, xyz.detach(), center.detach())  # [B, G, K]
        grouped = group_points(xyz, features, center, idx)  # [B, G, K, 3 + C]
        tokens = self.group_encoder(grouped).max(dim=2).values  # [B, G, D]
        global_feat = self.conv_proj(self.conv_branch(tokens).max(dim=1).values)  # [B, out]
        shape = self.transformer(tokens + self.pos_embed(center))  # [B, G, D]
        shape_feat = self.shape_proj(shape.max(dim=1).values)  # [B, out]
        return global_feat, shape_feat
