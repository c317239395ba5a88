"""PointNet++ with Gaussian-Aware Fusion (GS-CLIP, section 4.2, eq. 11): the core backbone, and thin adapters
to mmpretrain's and mmdetection3d's output conventions (the same parameters, so the same checkpoints)."""
import warnings
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


class _OutTypeAlias:
    """The deprecated ``out_type`` argument: the class it names is built instead (``__init__`` then runs on it
    with the same arguments). A base class, so that ``PointNet2GAF``'s signature stays its ``__init__``'s."""

    def __new__(cls, *args, **kwargs):
        if kwargs.get('out_type') is not None:
            cls = _deprecated_out_type(cls, kwargs['out_type'])
        return super().__new__(cls)


@MODELS.register_module()
class PointNet2GAF(_OutTypeAlias, BaseModule):
    """PointNet++ over positions (+ features), with Gaussian-Aware Fusion.

    Input ``x`` ``[B, N, C]``: Gaussians in the ``[N, 14]`` layout of
    :mod:`gsclip_mm.structures.gaussians` (``in_features`` picks the groups
    used), or a plain point cloud of ``in_channels`` columns, xyz first.
    Positions drive the grouping; the other columns are per-point features.

    Eq. 11 (our reading of the text; its symbols did not survive in our
    copy): ``embedding = MLP(f_p + f_g + f_s)``, PointNet++'s global feature
    plus GAF's convolution (global) and Transformer (shape) features, all
    ``C_last`` wide; ``MLP(f_p)`` with ``with_gaf=False``, which on
    ``in_features=('xyz', 'rgb')`` is the CLIP^2-style baseline.

    ``forward`` returns a dict (``L`` set-abstraction levels, level ``i``
    with ``M_i`` centres and ``C_i`` channels): ``sa_xyz``, ``L`` x
    ``[B, M_i, 3]`` (zeros ``[B, 1, 3]`` for a group-all level);
    ``sa_features``, ``L`` x ``[B, C_i, M_i]``; ``global_feat``
    ``[B, C_last]``, the last level max-pooled; ``embedding``
    ``[B, embed_dims]``. :class:`PointNet2GAFCls` (mmpretrain) and
    :class:`PointNet2GAFDet3D` (mmdetection3d) return those libraries'
    structures from the same ``state_dict``.

    Args:
        in_features (Sequence[str] | None): Gaussian feature groups, from
            ``('xyz', 'rgb', 'opacity', 'scale', 'rot')``, including
            ``'xyz'``. Default (``in_channels`` None too): all five.
        in_channels (int | None): plain point-cloud width (>= 3) instead of
            ``in_features``; give one of the two.
        sa_cfg (dict): set-abstraction levels: ``num_points``, ``radii``,
            ``num_samples``, ``mlp_channels``, one entry per level; a list
            radius makes a multi-scale (MSG) level, ``num_points=None`` a
            group-all one. Default: :data:`DEFAULT_SA_CFG` (SSG).
        with_gaf (bool): add the Gaussian-Aware Fusion branches.
        gaf_cfg (dict): GAF sizes, see
            :class:`gsclip_mm.models.layers.GaussianAwareFusion`.
        embed_dims (int): output width (CLIP's embedding width, e.g. 512).
        head_hidden (int | None): hidden width of the MLP head (default C_last).
        dropout (float): dropout in the MLP head.
        with_size (bool): ``forward`` also takes ``norm_scale`` ``[B, 1]``,
            each object's radius (metres) before unit-sphere normalisation,
            embedded (log) and added to the fused feature.
        init_cfg (dict | list | None): MMEngine weight-init config, e.g.
            ``dict(type='Pretrained', checkpoint='gsclip.pth',
            prefix='backbone.')``.
        out_type (str | None): deprecated: ``'mmpretrain'`` and ``'mmdet3d'``
            build :class:`PointNet2GAFCls` and :class:`PointNet2GAFDet3D`
            (whose ``out_indices`` and ``fp_channels`` then apply),
            ``'gsclip'`` this class.
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
                 init_cfg=None,
                 *,
                 out_type: Optional[str] = None):
        super().__init__(init_cfg=init_cfg)
        del out_type  # read by _OutTypeAlias.__new__
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

    def _split_input(self, x: torch.Tensor,
                     norm_scale: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Check the inputs; ``[B, N, C]`` -> positions ``[B, N, 3]`` and features ``[B, N, C'] | None``."""
        if self.with_size and (norm_scale is None or norm_scale.shape != (x.shape[0], 1)):
            raise ValueError(f'with_size=True needs norm_scale [B, 1] = [{x.shape[0]}, 1], got '
                             f'{None if norm_scale is None else tuple(norm_scale.shape)}')
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
        """Encode ``x`` ``[B, N, C]`` (and ``norm_scale`` ``[B, 1]`` with ``with_size``); the class docstring's
        dict."""
        xyz, feats = self._split_input(x, norm_scale)
        levels = self._abstract(xyz, feats)
        global_feat = levels[-1][1].max(dim=1).values  # [B, C_last]
        embedding = self._embed(xyz, feats, global_feat, norm_scale)  # [B, embed_dims]
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


@MODELS.register_module()
class PointNet2GAFCls(PointNet2GAF):
    """:class:`PointNet2GAF` for mmpretrain's ``ImageClassifier``: a tuple of stages, as its backbones return.

    ``L + 1`` stages: stage ``i < L`` is level ``i``'s ``sa_features``
    ``[B, C_i, M_i]`` (mmpretrain's ``GlobalAveragePooling(dim=1)`` neck
    pools one), stage ``L`` (= -1) the ``embedding`` ``[B, embed_dims]``,
    which ``LinearClsHead`` reads. GAF and the MLP head run only when the
    embedding is picked.

    Args:
        out_indices (Sequence[int]): the stages returned, in stage order
            (negative counts from the end). Default ``(-1, )``.
        **kwargs: :class:`PointNet2GAF`'s arguments.
    """

    def __init__(self, *args, out_indices: Optional[Sequence[int]] = (-1, ), **kwargs):
        super().__init__(*args, **kwargs)
        num_stages = len(self.sa_modules) + 1
        picked = (-1, ) if out_indices is None else tuple(int(i) for i in out_indices)  # None: the old default
        bad = [i for i in picked if not -num_stages <= i < num_stages]
        if not picked or bad:
            raise ValueError(f'out_indices must pick stages among the {num_stages} (the set-abstraction levels, then '
                             f'the embedding; negative counts from the end), got {out_indices}')
        normalised = sorted({i % num_stages for i in picked})
        if len(normalised) != len(picked):
            raise ValueError(f'out_indices {out_indices} names a stage twice')
        self.out_indices = tuple(normalised)

    def forward(self, x: torch.Tensor, norm_scale: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, ...]:
        """Encode ``x`` ``[B, N, C]``; the stages of ``out_indices``."""
        xyz, feats = self._split_input(x, norm_scale)
        levels = self._abstract(xyz, feats)
        stages: List[Optional[torch.Tensor]] = [f.transpose(1, 2) for _, f, _ in levels]  # [B, C_i, M_i]
        stages.append(None)  # the embedding, computed only when picked
        if len(levels) in self.out_indices:
            stages[-1] = self._embed(xyz, feats, levels[-1][1].max(dim=1).values, norm_scale)  # [B, embed_dims]
        return tuple(stages[i] for i in self.out_indices)


@MODELS.register_module()
class PointNet2GAFDet3D(PointNet2GAF):
    """:class:`PointNet2GAF` for mmdetection3d's heads: ``PointNet2SASSG``'s dict, with feature propagation.

    ``sa_xyz``, ``sa_features``, ``sa_indices``: ``L + 1`` entries, entry 0
    the input (``[B, N, 3]``, ``[B, C', N]`` or None without features,
    ``[B, N]`` ``0..N-1``), entry ``i + 1`` level ``i`` (``[B, M_i, 3]``,
    ``[B, C_i, M_i]``, int64 ``[B, M_i]`` centre indices into the input; a
    group-all level has the origin as centre and index -1). ``fp_xyz``,
    ``fp_features``, ``fp_indices``: ``len(fp_channels) + 1`` entries, entry
    0 the last SA entry, entry ``j + 1`` FP level ``j`` on SA entry
    ``L - j - 1``'s points (``[B, M, 3]``, ``[B, fp_channels[j][-1], M]``,
    ``[B, M]``). Plus ``global_feat`` and ``embedding`` as
    :class:`PointNet2GAF`'s (so every parameter is used).

    Args:
        fp_channels (Sequence[Sequence[int]]): MLP widths of the
            ``PointFPModule`` levels, as ``PointNet2SASSG``'s; at most one per
            SA level. Default none: no ``fp_modules`` keys, the core's
            ``state_dict``.
        **kwargs: :class:`PointNet2GAF`'s arguments.
    """

    def __init__(self, *args, fp_channels: Sequence[Sequence[int]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fp_modules = build_fp_modules(self.in_channels - 3, [sa.out_channels for sa in self.sa_modules],
                                           fp_channels)

    def forward(self, x: torch.Tensor, norm_scale: Optional[torch.Tensor] = None) -> Dict[str, object]:
        """Encode ``x`` ``[B, N, C]``; the class docstring's dict."""
        xyz, feats = self._split_input(x, norm_scale)
        levels = self._abstract(xyz, feats)
        global_feat = levels[-1][1].max(dim=1).values  # [B, C_last]
        embedding = self._embed(xyz, feats, global_feat, norm_scale)  # [B, embed_dims]
        return dict(self._propagate(xyz, feats, levels), global_feat=global_feat, embedding=embedding)

    def _propagate(self, xyz: torch.Tensor, feats: Optional[torch.Tensor],
                   levels: List[tuple]) -> Dict[str, List[Optional[torch.Tensor]]]:
        """``sa_*`` with the input as entry 0, then ``fp_*`` through the FP levels (class docstring)."""
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


#: Deprecated ``out_type`` values and the classes that replace them.
DEPRECATED_OUT_TYPES = {'gsclip': PointNet2GAF, 'mmpretrain': PointNet2GAFCls, 'mmdet3d': PointNet2GAFDet3D}


def _deprecated_out_type(cls: type, out_type: str) -> type:
    """The class that ``cls(out_type=out_type)`` builds (``cls`` or the adapter below it), with a warning."""
    if out_type not in DEPRECATED_OUT_TYPES:
        raise ValueError(f'out_type must be one of {tuple(DEPRECATED_OUT_TYPES)}, got {out_type!r}')
    target = DEPRECATED_OUT_TYPES[out_type]
    if not (issubclass(cls, target) or issubclass(target, cls)):
        raise ValueError(f"out_type={out_type!r} builds {target.__name__}, not a {cls.__name__}")
    warnings.warn(f"{cls.__name__}(out_type={out_type!r}) is deprecated: use type='{target.__name__}' without "
                  'out_type', FutureWarning, stacklevel=3)
    return cls if issubclass(cls, target) else target
