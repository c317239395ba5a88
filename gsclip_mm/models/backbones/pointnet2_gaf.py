"""PointNet++ with Gaussian-Aware Fusion (GS-CLIP, section 4.2, eq. 11)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import nn

from gsclip_mm.registry import MODELS
from gsclip_mm.structures import GS_DIM, GS_FEATURES
from ..layers import GaussianAwareFusion, build_sa_modules

# Sized for CPU training: 32 x 1024 Gaussians take about 0.7 s forward +
# backward with GAF, 0.4 s without, on one thread of a shared 2-core machine
# (docs/benchmarks.md, tools/analysis_tools/benchmark_model.py); the radii suit objects
# normalised into the unit sphere.
DEFAULT_SA_CFG = dict(
    num_points=(256, 64, None),
    radii=(0.2, 0.4, None),
    num_samples=(16, 16, None),
    mlp_channels=((32, 32, 64), (64, 64, 128), (128, 256, 512)))

DEFAULT_GAF_CFG = dict(num_groups=64, group_size=32, embed_dims=128, depth=2, num_heads=4, mlp_ratio=2.0,
                       dropout=0.0)


@MODELS.register_module()
class PointNet2GAF(BaseModule):
    """PointNet++ over positions (+ features), with Gaussian-Aware Fusion.

    Input ``x``: ``[B, N, C]``, either Gaussians in the ``[N, 14]`` layout of
    :mod:`gsclip_mm.structures.gaussians` (``in_features`` picks the groups
    used) or a plain point cloud of ``in_channels`` columns whose first three
    are xyz (e.g. 3 = xyz, 6 = xyz rgb), for use as a point-cloud feature
    extractor from another MMEngine config. Positions always drive the
    grouping; the other picked columns are per-point features.

    The embedding follows the paper's eq. 11 (whose symbols did not survive
    in our copy; this is our reading of its text): with PointNet++'s global
    feature ``f_p``, GAF's convolution (global) feature ``f_g`` and
    Transformer (shape) feature ``f_s``, all of width ``C_last``,
    ``embedding = MLP(f_p + f_g + f_s)`` (the residual form), or
    ``MLP(f_p)`` with ``with_gaf=False``. ``with_gaf=False`` with
    ``in_features=('xyz', 'rgb')`` is the CLIP^2-style baseline.

    Args:
        in_features (Sequence[str] | None): Gaussian feature groups, from
            ``('xyz', 'rgb', 'opacity', 'scale', 'rot')``; must include
            ``'xyz'``. Default (when ``in_channels`` is None too): all five.
        in_channels (int | None): plain point-cloud width (>= 3) instead of
            ``in_features``; give one of the two.
        sa_cfg (dict): set-abstraction levels: ``num_points``, ``radii``,
            ``num_samples``, ``mlp_channels``, one entry per level. A level
            whose radius is a list is multi-scale (MSG): its ``num_samples``
            is a list of the same length and its ``mlp_channels`` a list of
            width lists. ``num_points=None`` groups all points (last level).
            Default: :data:`DEFAULT_SA_CFG` (SSG).
        with_gaf (bool): add the Gaussian-Aware Fusion branches.
        gaf_cfg (dict): GAF sizes, see
            :class:`gsclip_mm.models.layers.GaussianAwareFusion`.
        embed_dims (int): output width (CLIP's embedding width, e.g. 512).
        head_hidden (int | None): hidden width of the MLP head (default C_last).
        dropout (float): dropout in the MLP head.
        with_size (bool): ``forward`` also takes ``norm_scale`` ``[B, 1]``,
            each object's radius before unit-sphere normalisation (metres),
            embedded (log) and added to the fused feature: normalisation
            removes absolute size, one of the strongest cues indoors
            (a night stand is a small dresser).
        init_cfg (dict | list | None): MMEngine weight-init config.

    ``forward`` returns a dict:
        ``sa_xyz``: list of ``[B, M_i, 3]`` centres per level (zeros
        ``[B, 1, 3]`` for a group-all level); ``sa_features``: list of
        ``[B, C_i, M_i]``; ``global_feat``: ``[B, C_last]``, PointNet++'s
        max-pooled last level; ``embedding``: ``[B, embed_dims]``.
    """

    def __init__(self,
                 in_features: Optional[Sequence[str]] = None,
                 in_channels: Optional[int] = None,
                 sa_cfg: Optional[dict] = None,
                 with_gaf: bool = True,
                 gaf_cfg: Optional[dict] = None,
                 embed_dims: int = 512,
                 head_hidden: Optional[int] = None,
                 dropout: float = 0.0,
                 with_size: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.feature_columns, self.in_channels = self._input_layout(in_features, in_channels)
        self.in_features = None if self.feature_columns is None else tuple(in_features or GS_FEATURES)
        num_feats = self.in_channels - 3  # per-point feature width besides xyz
        sa = dict(DEFAULT_SA_CFG, **(sa_cfg or {}))
        unknown = set(sa) - set(DEFAULT_SA_CFG)
        if unknown:
            raise ValueError(f'unknown sa_cfg keys {sorted(unknown)}; expected {sorted(DEFAULT_SA_CFG)}')
        self.sa_modules = build_sa_modules(num_feats, **sa)
        out_channels = self.sa_modules[-1].out_channels
        self.with_gaf = with_gaf
        self.gaf = GaussianAwareFusion(num_feats, out_channels, **dict(DEFAULT_GAF_CFG, **(gaf_cfg or {}))) \
            if with_gaf else None
        self.with_size = with_size
        self.size_embed = nn.Sequential(nn.Linear(1, out_channels // 4), nn.GELU(),
                                        nn.Linear(out_channels // 4, out_channels)) if with_size else None
        hidden = head_hidden or out_channels
        self.head = nn.Sequential(
            nn.Linear(out_channels, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, embed_dims))
        self.embed_dims = embed_dims

    @staticmethod
    def _input_layout(in_features, in_channels) -> Tuple[Optional[List[int]], int]:
        """Columns of the 14-wide Gaussians to use (None: a plain cloud) and the input width."""
        if in_features is not None and in_channels is not None:
            raise ValueError(f'give in_features (Gaussians) or in_channels (plain points), not both: '
                             f'in_features={in_features}, in_channels={in_channels}')
        if in_channels is not None:
            if in_channels < 3:
                raise ValueError(f'in_channels must be >= 3 (xyz first), got {in_channels}')
            return None, int(in_channels)
        names = tuple(in_features or GS_FEATURES)
        unknown = [n for n in names if n not in GS_FEATURES]
        if unknown or 'xyz' not in names or len(set(names)) != len(names):
            raise ValueError(f'in_features must be distinct names from {tuple(GS_FEATURES)} including '
                             f"'xyz', got {names}")
        cols = list(range(GS_DIM))
        order = ['xyz'] + [n for n in names if n != 'xyz']  # xyz first: the grouping positions
        columns = [c for n in order for c in cols[GS_FEATURES[n]]]
        return columns, len(columns)

    def _split_input(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``[B, N, C]`` -> positions ``[B, N, 3]`` and features ``[B, N, C'] | None``."""
        width = GS_DIM if self.feature_columns is not None else self.in_channels
        if x.dim() != 3 or x.shape[-1] != width:
            kind = f'Gaussians [B, N, {GS_DIM}]' if self.feature_columns is not None else \
                f'points [B, N, in_channels={self.in_channels}]'
            raise ValueError(f'{type(self).__name__} expects {kind}, got {tuple(x.shape)}')
        if self.feature_columns is not None and self.feature_columns != list(range(len(self.feature_columns))):
            x = x[..., self.feature_columns]  # [B, N, in_channels]
        else:
            x = x[..., :self.in_channels]
        xyz = x[..., :3].contiguous()  # [B, N, 3]
        feats = x[..., 3:].contiguous() if self.in_channels > 3 else None  # [B, N, C']
        return xyz, feats

    def forward(self, x: torch.Tensor, norm_scale: Optional[torch.Tensor] = None) -> Dict[str, object]:
        """Encode a batch ``x`` ``[B, N, C]`` (and ``norm_scale`` ``[B, 1]`` with
        ``with_size``); see the class docstring for the returned dict."""
        if self.with_size and (norm_scale is None or norm_scale.shape != (x.shape[0], 1)):
            raise ValueError(f'with_size=True needs norm_scale [B, 1] = [{x.shape[0]}, 1], got '
                             f'{None if norm_scale is None else tuple(norm_scale.shape)}')
        xyz, feats = self._split_input(x)
        sa_xyz, sa_features = [], []
        cur_xyz, cur_feats = xyz, feats
        for sa in self.sa_modules:
            cur_xyz, cur_feats = sa(cur_xyz, cur_feats)  # [B, M, 3], [B, M, C_i]
            sa_xyz.append(cur_xyz)
            sa_features.append(cur_feats.transpose(1, 2))  # [B, C_i, M]
        global_feat = cur_feats.max(dim=1).values  # [B, C_last]
        fused = global_feat
        if self.gaf is not None:
            gaf_global, gaf_shape = self.gaf(xyz, feats)  # [B, C_last] each
            fused = global_feat + gaf_global + gaf_shape  # residual injection (eq. 11)
        if self.size_embed is not None:
            fused = fused + self.size_embed(norm_scale.clamp_min(1e-3).log())  # [B, C_last]
        return dict(sa_xyz=sa_xyz, sa_features=sa_features, global_feat=global_feat,
                    embedding=self.head(fused))
