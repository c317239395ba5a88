"""PointNet++ with Gaussian-Aware Fusion (GS-CLIP, section 4.2, eq. 11)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import nn

from gsclip_mm.registry import MODELS
from gsclip_mm.structures import GS_DIM, GS_FEATURES
from ..layers import GaussianAwareFusion, build_sa_modules
from ..layers.pointnet_modules import build_fp_modules

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

#: ``out_type`` values: whose output convention ``forward`` follows (see :class:`PointNet2GAF`).
OUT_TYPES = ('gsclip', 'mmpretrain', 'mmdet3d')


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
        out_type (str): whose output convention ``forward`` follows, one of
            :data:`OUT_TYPES`; see below. It changes no parameter and no
            value, only what is returned.
        out_indices (Sequence[int] | None): ``out_type='mmpretrain'`` only:
            the stages returned, as mmpretrain's backbones' ``out_indices``
            (negative counts from the end). Default ``(-1,)``, the embedding.
        fp_channels (Sequence[Sequence[int]]): ``out_type='mmdet3d'`` only:
            MLP widths of the feature-propagation levels, as
            ``PointNet2SASSG``'s ``fp_channels`` (e.g. ``((256, 256), (256,
            256))``); one level per set-abstraction level at most. Default
            none (no ``fp_modules`` parameters, so the ``state_dict`` is
            that of the other conventions).
        init_cfg (dict | list | None): MMEngine weight-init config, e.g.
            ``dict(type='Pretrained', checkpoint='gsclip.pth',
            prefix='backbone.')`` to start from a GS-CLIP checkpoint.

    ``forward`` returns, by ``out_type`` (``L`` set-abstraction levels, level
    ``i`` with ``M_i`` centres and ``C_i`` channels; ``C'`` = ``in_channels``
    - 3 per-point input features):

    - ``'gsclip'`` (default; what ``GSCLIP`` and our configs use): a dict
      with ``sa_xyz``: list of ``L`` ``[B, M_i, 3]`` centres (zeros
      ``[B, 1, 3]`` for a group-all level); ``sa_features``: list of ``L``
      ``[B, C_i, M_i]``; ``global_feat``: ``[B, C_last]``, PointNet++'s
      max-pooled last level; ``embedding``: ``[B, embed_dims]``.
    - ``'mmpretrain'``: a tuple of the stages picked by ``out_indices``, in
      stage order, as mmpretrain's backbones return (``LinearClsHead`` takes
      the last one). ``L + 1`` stages: stage ``i < L`` is level ``i``'s
      features ``[B, C_i, M_i]`` (add mmpretrain's
      ``GlobalAveragePooling(dim=1)`` neck to pool one); stage ``L`` (= -1)
      is ``embedding`` ``[B, embed_dims]``. GAF and the MLP head run only
      when the embedding is picked.
    - ``'mmdet3d'``: mmdetection3d's ``PointNet2SASSG`` dict. ``sa_xyz``,
      ``sa_features``, ``sa_indices``: lists of ``L + 1``, entry 0 the input
      (``[B, N, 3]`` positions, ``[B, C', N]`` features or None with
      ``C' = 0``, ``[B, N]`` indices ``0..N-1``), entry ``i + 1`` level
      ``i`` (``[B, M_i, 3]``, ``[B, C_i, M_i]``, int64 ``[B, M_i]`` indices
      of the centres into the input points; a group-all level, which
      ``PointNet2SASSG`` does not have, has the origin as its centre and
      index -1: no input point). ``fp_xyz``, ``fp_features``,
      ``fp_indices``: lists of ``len(fp_channels) + 1``, entry 0 the last SA
      level, entry ``j + 1`` FP level ``j`` on SA entry ``L - j - 1``'s
      points (``[B, M, 3]``, ``[B, fp_channels[j][-1], M]``, ``[B, M]``).
      Plus ``global_feat`` and ``embedding`` as in ``'gsclip'`` (keys
      mmdetection3d's consumers ignore; computing them keeps every
      parameter in use).
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
                 out_type: str = 'gsclip',
                 out_indices: Optional[Sequence[int]] = None,
                 fp_channels: Sequence[Sequence[int]] = (),
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
        self.out_type, self.out_indices = self._output_layout(out_type, out_indices, fp_channels,
                                                              num_stages=len(self.sa_modules) + 1)
        # Feature propagation (mmdet3d outputs only); no levels, no parameters: the state_dict is unchanged.
        self.fp_modules = build_fp_modules(num_feats, [sa.out_channels for sa in self.sa_modules], fp_channels)

    @staticmethod
    def _output_layout(out_type: str, out_indices: Optional[Sequence[int]], fp_channels: Sequence,
                       num_stages: int) -> Tuple[str, Optional[Tuple[int, ...]]]:
        """Check the output settings; ``out_indices`` made non-negative and sorted (None unless mmpretrain)."""
        if out_type not in OUT_TYPES:
            raise ValueError(f'out_type must be one of {OUT_TYPES}, got {out_type!r}')
        if out_indices is not None and out_type != 'mmpretrain':
            raise ValueError(f"out_indices picks mmpretrain's stages: it needs out_type='mmpretrain', got "
                             f'out_type={out_type!r}')
        if len(fp_channels) and out_type != 'mmdet3d':
            raise ValueError(f"fp_channels adds mmdetection3d's feature propagation: it needs out_type='mmdet3d', "
                             f'got out_type={out_type!r}')
        if out_type != 'mmpretrain':
            return out_type, None
        picked = (-1, ) if out_indices is None else tuple(int(i) for i in out_indices)
        bad = [i for i in picked if not -num_stages <= i < num_stages]
        if not picked or bad:
            raise ValueError(f'out_indices must pick stages among the {num_stages} (the set-abstraction levels, then '
                             f'the embedding; negative counts from the end), got {out_indices}')
        normalised = sorted({i % num_stages for i in picked})
        if len(normalised) != len(picked):
            raise ValueError(f'out_indices {out_indices} names a stage twice')
        return out_type, tuple(normalised)

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

    def forward(self, x: torch.Tensor, norm_scale: Optional[torch.Tensor] = None):
        """Encode a batch ``x`` ``[B, N, C]`` (and ``norm_scale`` ``[B, 1]`` with ``with_size``).

        Returns the dict or tuple of ``out_type`` (see the class docstring).
        """
        if self.with_size and (norm_scale is None or norm_scale.shape != (x.shape[0], 1)):
            raise ValueError(f'with_size=True needs norm_scale [B, 1] = [{x.shape[0]}, 1], got '
                             f'{None if norm_scale is None else tuple(norm_scale.shape)}')
        xyz, feats = self._split_input(x)
        levels = self._abstract(xyz, feats)
        if self.out_type == 'mmpretrain':
            return self._mmpretrain_stages(xyz, feats, levels, norm_scale)
        global_feat = levels[-1][1].max(dim=1).values  # [B, C_last]
        embedding = self._embed(xyz, feats, global_feat, norm_scale)  # [B, embed_dims]
        if self.out_type == 'mmdet3d':
            return dict(self._mmdet3d_outputs(xyz, feats, levels), global_feat=global_feat, embedding=embedding)
        return dict(sa_xyz=[c for c, _, _ in levels], sa_features=[f.transpose(1, 2) for _, f, _ in levels],
                    global_feat=global_feat, embedding=embedding)

    def _abstract(self, xyz: torch.Tensor, feats: Optional[torch.Tensor]) -> List[tuple]:
        """The set-abstraction levels on ``xyz`` ``[B, N, 3]`` and ``feats`` ``[B, N, C'] | None``.

        Returns, per level, its centres ``[B, M_i, 3]``, channels-last
        features ``[B, M_i, C_i]`` and centre indices into the previous
        level's points ``[B, M_i]`` (None for a group-all level).
        """
        levels = []
        cur_xyz, cur_feats = xyz, feats
        for sa in self.sa_modules:
            cur_xyz, cur_feats, idx = sa(cur_xyz, cur_feats, return_indices=True)
            levels.append((cur_xyz, cur_feats, idx))
        return levels

    def _embed(self, xyz: torch.Tensor, feats: Optional[torch.Tensor], global_feat: torch.Tensor,
               norm_scale: Optional[torch.Tensor]) -> torch.Tensor:
        """Eq. 11: ``[B, C_last]`` PointNet++ global feature (+ GAF, + size) -> ``[B, embed_dims]``."""
        fused = global_feat
        if self.gaf is not None:
            gaf_global, gaf_shape = self.gaf(xyz, feats)  # [B, C_last] each
            fused = global_feat + gaf_global + gaf_shape  # residual injection (eq. 11)
        if self.size_embed is not None:
            fused = fused + self.size_embed(norm_scale.clamp_min(1e-3).log())  # [B, C_last]
        return self.head(fused)

    def _mmpretrain_stages(self, xyz: torch.Tensor, feats: Optional[torch.Tensor], levels: List[tuple],
                           norm_scale: Optional[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """mmpretrain's tuple: level features ``[B, C_i, M_i]``, then the embedding ``[B, embed_dims]``."""
        stages: List[Optional[torch.Tensor]] = [f.transpose(1, 2) for _, f, _ in levels]
        stages.append(None)  # the embedding, computed only when picked
        if len(levels) in self.out_indices:
            stages[-1] = self._embed(xyz, feats, levels[-1][1].max(dim=1).values, norm_scale)
        return tuple(stages[i] for i in self.out_indices)

    def _mmdet3d_outputs(self, xyz: torch.Tensor, feats: Optional[torch.Tensor],
                         levels: List[tuple]) -> Dict[str, List[Optional[torch.Tensor]]]:
        """``PointNet2SASSG``'s dict: ``sa_*`` with the input as entry 0, then ``fp_*`` (class docstring)."""
        B, N = xyz.shape[:2]
        sa_xyz = [xyz]  # [B, N, 3], then [B, M_i, 3]
        sa_features = [None if feats is None else feats.transpose(1, 2)]  # [B, C', N] | None, then [B, C_i, M_i]
        sa_indices = [torch.arange(N, device=xyz.device).expand(B, N)]  # [B, N], then [B, M_i] into the input
        for centres, level_feats, idx in levels:
            sa_xyz.append(centres)
            sa_features.append(level_feats.transpose(1, 2))
            sa_indices.append(torch.full((B, 1), -1, dtype=torch.long, device=xyz.device) if idx is None
                              else torch.gather(sa_indices[-1], 1, idx))
        num_sa = len(levels)
        fp_xyz, fp_features, fp_indices = [sa_xyz[-1]], [sa_features[-1]], [sa_indices[-1]]
        for j, fp in enumerate(self.fp_modules):
            fp_features.append(fp(sa_xyz[num_sa - j - 1], sa_xyz[num_sa - j], sa_features[num_sa - j - 1],
                                  fp_features[-1]))  # [B, C_fp_j, M]
            fp_xyz.append(sa_xyz[num_sa - j - 1])
            fp_indices.append(sa_indices[num_sa - j - 1])
        return dict(sa_xyz=sa_xyz, sa_features=sa_features, sa_indices=sa_indices, fp_xyz=fp_xyz,
                    fp_features=fp_features, fp_indices=fp_indices)
