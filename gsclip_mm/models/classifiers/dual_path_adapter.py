"""CLIP2Point's Gated Dual-Path Adapter (GDPA) for few-shot classification from multi-view depth maps.

Two frozen paths see the same ``V`` depth views of an object: CLIP's visual encoder (PointCLIP's path) and
CLIP2Point's pre-trained depth encoder. Each path's ``[B, V, D]`` view features go through a light
global-view aggregator (trainable) to one ``[B, D]`` feature; a learned gate ``g`` in (0, 1) fuses the two,
``g * f_clip + (1 - g) * f_depth``, and the fused feature is classified by cosine against CLIP text
embeddings of the class names. Only the aggregators and the gate train.

Provenance of each choice ("paper": CLIP2Point, ICCV 2023 / arXiv 2210.01055; "code": the authors' public
``models/dpa.py``, ``models/adapter.py``, ``fewshot.py``; "ours": neither says, or we differ on purpose):

- two paths, both encoders frozen, one aggregator per path (paper, Fig. 3; code freezes all but the adapters).
- aggregator: learnable per-view weights initialised to 0.5, normalisation, dropout 0.075, concatenate the
  views, ``Linear(V*D, D)``, normalisation, ReLU, dropout, ``Linear(D, D)`` (code's ``SimplifiedAdapter``).
  Ours: LayerNorm instead of the code's BatchNorm (a k-shot batch can hold one object, which BatchNorm
  cannot train on), and a residual to the mean of the view features with the last linear layer
  zero-initialised, so an untrained adapter is exactly the training-free PointCLIP / CLIP2Point zero-shot
  classifier and few-shot training starts from it.
- gate: the paper names a "gated fusion" of the two paths; the public code averages them with a fixed 0.5.
  Ours: ``g = sigmoid(gate_logit)``, one learned scalar, initialised to 0 (``g = 0.5``, the code's value).
  Each path's aggregated feature is L2-normalised before the gate (ours) so that ``g`` weighs two vectors of
  equal length rather than whichever path has the larger norm.
- classifier: cosine between the L2-normalised fused feature and the text embeddings (code), times a fixed
  logit scale. The code uses raw cosines (scale 1); ours: CLIP's own inverse temperature (the frozen
  CLIP's ``logit_scale.exp()``, as CLIP's zero-shot classifier), or a fixed ``logit_scale`` given in the
  config; not learned. Loss: cross-entropy over the training vocabulary (code).
"""
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule

from gsclip_mm.registry import MODELS
from gsclip_mm.structures.categories import resolve_classes
from gsclip_mm.utils import readable_class_name
from .base import GSCLIPBaseModel

# Where CLIP2Point's image-depth pre-training leaves its checkpoint (configs/clip2point/clip2point_pretrain_*).
PRETRAIN_HINT = ('run CLIP2Point\'s image-depth pre-training first (tools/train.py '
                 'configs/clip2point/clip2point_pretrain_*_synthetic.py) and point model.pretrained_depth at its '
                 'checkpoint, or set model.pretrained_depth=None to start the depth path from CLIP\'s weights '
                 '(for tests, or when an adapter checkpoint that holds the depth path is loaded after building)')


@MODELS.register_module()
class GlobalViewAggregator(BaseModule):
    """CLIP2Point's global-view aggregator: ``[B, V, D]`` view features -> ``[B, D]``.

    ``out = mean_v(x) + Linear(ReLU(LN(Linear(flatten(LN(w_v * x_v))))))`` (see the module docstring for
    which parts are the authors' and which ours).

    Args:
        num_views (int): ``V``; the first linear layer takes the concatenated views.
        embed_dims (int): ``D``.
        hidden_dims (int | None): width of the hidden layer (code: ``D``).
        dropout (float): dropout before each linear layer (code: 0.075).
        view_weight_init (float): initial per-view weight (code: 0.5).
        residual (bool): add the view mean to the output (ours).
        zero_init_out (bool): zero the last layer, so the output starts at the view mean (ours; only
            meaningful with ``residual``).
    """

    def __init__(self, num_views: int, embed_dims: int, hidden_dims: Optional[int] = None, dropout: float = 0.075,
                 view_weight_init: float = 0.5, residual: bool = True, zero_init_out: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        hidden_dims = hidden_dims or embed_dims
        self.num_views, self.embed_dims, self.residual = num_views, embed_dims, residual
        self.view_weights = nn.Parameter(torch.full((num_views, ), float(view_weight_init)))
        self.mlp = nn.Sequential(
            nn.LayerNorm(embed_dims), nn.Dropout(dropout), nn.Flatten(),
            nn.Linear(num_views * embed_dims, hidden_dims), nn.LayerNorm(hidden_dims), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden_dims, embed_dims))
        if zero_init_out:
            nn.init.zeros_(self.out_layer.weight)
            nn.init.zeros_(self.out_layer.bias)

    @property
    def out_layer(self) -> nn.Linear:
        return self.mlp[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, V, D]`` -> ``[B, D]``."""
        assert x.ndim == 3 and x.shape[1:] == (self.num_views, self.embed_dims), \
            f'view features must be [B, {self.num_views}, {self.embed_dims}], got {tuple(x.shape)}'
        out = self.mlp(x * self.view_weights.view(1, -1, 1))  # [B, D]
        return out + x.mean(dim=1) if self.residual else out


@MODELS.register_module()
class GatedDualPathAdapter(GSCLIPBaseModel):
    """CLIP2Point's Gated Dual-Path Adapter over multi-view depth maps (see the module docstring).

    Args:
        clip (dict): the CLIP, ``dict(model_name, pretrained, clip_seed)``, shared by both encoders and the
            text head.
        pretrained_depth (str | None): checkpoint of CLIP2Point's pre-trainer; its ``depth_encoder.*``
            weights load (strictly) into the depth path when the model is built, so a model built for
            testing is complete without ``init_weights``. A missing file is an error that names it.
            None: the depth path starts from CLIP's weights (then both paths see the same encoder; for
            tests, or when a full adapter checkpoint is loaded afterwards, as ``tools/test.py`` does).
        num_views (int): ``V``, views per object (the pipeline's renderer's ``num_views``).
        head (dict | None): overrides of the ``FrozenCLIPHead`` (text embeddings, ``predict``'s vocabulary
            ``eval_classes``, prompt ``templates``); its ``clip`` settings come from ``clip``.
        encoder (dict | None): the depth-view encoder type and extra arguments, default
            ``dict(type='CLIPDepthEncoder')``; ``clip``, ``trainable`` and ``aggregate='none'`` are set here.
        aggregator (dict | None): overrides of ``GlobalViewAggregator`` (one per path).
        gate_init (float): initial gate logit (0: ``g = 0.5``).
        logit_scale (float | None): fixed inverse temperature of the classifier; None: the CLIP's own.
        classes (str | Sequence[str] | None): the training vocabulary of the cross-entropy (names or a
            vocabulary name); None: the head's ``eval_classes``. A training object of another class is an
            error.
        input_key (str): the stacked input holding the ``[B, V, 3, S, S]`` views.
        data_preprocessor (dict | None): default ``GSCLIPDataPreprocessor``.

    ``forward(inputs, data_samples, mode)``:
        - ``'tensor'``: ``[B, D]`` fused feature ``g * f_clip + (1 - g) * f_depth`` (not normalised).
        - ``'loss'``: ``loss_cls`` (cross-entropy), and the logged ``gate`` and ``logit_scale``.
        - ``'predict'``: data samples with ``pred_score`` ``[C]`` (cosine over the head's ``eval_classes``,
          as GSCLIP: ``ZeroShotAccuracy`` scores it), ``pred_label`` and ``embedding``.
    A test set's recorded misses never reach the model (``GSCLIPBaseModel``).
    """

    def __init__(self,
                 clip: dict,
                 pretrained_depth: Optional[str],
                 num_views: int = 6,
                 head: Optional[dict] = None,
                 encoder: Optional[dict] = None,
                 aggregator: Optional[dict] = None,
                 gate_init: float = 0.0,
                 logit_scale: Optional[float] = None,
                 classes: Union[str, Sequence[str], None] = None,
                 input_key: str = 'depth_views',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if pretrained_depth is not None and not osp.isfile(pretrained_depth):
            raise FileNotFoundError(f'GatedDualPathAdapter: no depth-encoder checkpoint at {pretrained_depth!r}: '
                                    f'{PRETRAIN_HINT}')
        self.pretrained_depth = pretrained_depth
        self.input_key = input_key
        self.head = MODELS.build({'type': 'FrozenCLIPHead', **(head or {}), **clip})
        self.head.requires_grad_(False)  # text embeddings and predict only: nothing of it trains
        embed_dims = self.head.embed_dims
        enc = {'type': 'CLIPDepthEncoder', **(encoder or {}), 'clip': clip, 'aggregate': 'none'}
        self.clip_encoder = MODELS.build(dict(enc, trainable=False))  # CLIP's tower, held frozen outside the tree
        self.depth_encoder = MODELS.build(dict(enc, trainable=True))  # a copy, given CLIP2Point's weights
        self.depth_encoder.requires_grad_(False)
        agg = {'type': 'GlobalViewAggregator', 'num_views': num_views, 'embed_dims': embed_dims, **(aggregator or {})}
        self.clip_aggregator = MODELS.build(agg)
        self.depth_aggregator = MODELS.build(agg)
        self.gate_logit = nn.Parameter(torch.tensor(float(gate_init)))
        self.fixed_logit_scale = logit_scale
        self.classes = resolve_classes(classes) if classes is not None else tuple(self.head.eval_classes)
        if pretrained_depth is not None:
            self._load_depth_encoder()

    # ------------------------------------------------------------- weights
    def _load_depth_encoder(self) -> None:
        """``depth_encoder.*`` of the pre-training checkpoint -> the depth path, strictly."""
        from ..backbones.clip_depth_encoder import load_depth_encoder_weights
        load_depth_encoder_weights(self.depth_encoder, self.pretrained_depth, prefix='depth_encoder.')
        print_log(f'GatedDualPathAdapter: depth path loaded from {self.pretrained_depth}', logger='current')

    def train(self, mode: bool = True) -> 'GatedDualPathAdapter':
        """Train the aggregators; the frozen encoders always stay in eval mode."""
        super().train(mode)
        self.clip_encoder.eval()
        self.depth_encoder.eval()
        return self

    # ------------------------------------------------------------ features
    def gate(self) -> torch.Tensor:
        """``g = sigmoid(gate_logit)`` in (0, 1), the weight of the CLIP path (scalar)."""
        return torch.sigmoid(self.gate_logit)

    def logit_scale(self) -> torch.Tensor:
        """The classifier's fixed inverse temperature (scalar, no gradient)."""
        if self.fixed_logit_scale is not None:
            return torch.tensor(float(self.fixed_logit_scale))
        return self.head.clip.logit_scale.detach().float().exp().cpu()

    def _views(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        if self.input_key not in inputs:
            raise KeyError(f'GatedDualPathAdapter needs inputs[{self.input_key!r}] (a depth-view renderer before '
                           f'PackGSCLIPInputs in the pipeline); batch has {sorted(inputs)}')
        views = inputs[self.input_key]  # [B, V, 3, S, S]
        if views.ndim != 5 or views.shape[2] != 3:
            raise ValueError(f'inputs[{self.input_key!r}] must be [B, V, 3, S, S], got {tuple(views.shape)}')
        return views

    @torch.no_grad()
    def view_features(self, inputs: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The two frozen paths: ``[B, V, 3, S, S]`` views -> (CLIP, depth) ``[B, V, D]`` view features."""
        views = self._views(inputs)
        return self.clip_encoder(views).float(), self.depth_encoder(views).float()

    def path_features(self, inputs: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Aggregated, L2-normalised ``(f_clip, f_depth)``, each ``[B, D]``."""
        v_clip, v_depth = self.view_features(inputs)
        return (F.normalize(self.clip_aggregator(v_clip), dim=-1),
                F.normalize(self.depth_aggregator(v_depth), dim=-1))

    def fuse(self, f_clip: torch.Tensor, f_depth: torch.Tensor) -> torch.Tensor:
        """``g * f_clip + (1 - g) * f_depth``: ``[B, D]`` x 2 -> ``[B, D]``, on the segment between them."""
        g = self.gate()
        return g * f_clip + (1 - g) * f_depth

    def extract_feat(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, V, 3, S, S]`` views -> ``[B, D]`` fused feature (not normalised)."""
        return self.fuse(*self.path_features(inputs))

    def class_logits(self, fused: torch.Tensor, class_names: Sequence[str]) -> torch.Tensor:
        """``[B, D]`` fused features -> ``[B, C]`` ``scale * cos(fused, text(class))``."""
        text = self.head.text_embeddings(class_names).to(fused)  # [C, D], unit rows
        return self.logit_scale().to(fused) * F.normalize(fused, dim=-1) @ text.t()

    # --------------------------------------------------------------- modes

    def labels(self, data_samples: Sequence) -> torch.Tensor:
        """``[B]`` indices of the samples' ``class_name`` in the training vocabulary :attr:`classes`."""
        vocab = [readable_class_name(c) for c in self.classes]
        names = [readable_class_name(ds.metainfo.get('class_name', '')) for ds in data_samples]
        unknown = sorted({n for n in names if n not in vocab})
        if unknown:
            raise ValueError(f'training classes {unknown} are not in the adapter\'s vocabulary {list(self.classes)} '
                             f'(model.classes, default the head\'s eval_classes)')
        return torch.tensor([vocab.index(n) for n in names], dtype=torch.long)

    def loss(self, inputs: Dict[str, torch.Tensor], data_samples: list) -> Dict[str, torch.Tensor]:
        """Cross-entropy of the batch over :attr:`classes`, plus the logged gate and scale."""
        logits = self.class_logits(self.extract_feat(inputs), self.classes)  # [B, C]
        loss = F.cross_entropy(logits, self.labels(data_samples).to(logits.device))
        return dict(loss_cls=loss, gate=self.gate().detach(), logit_scale=self.logit_scale())
