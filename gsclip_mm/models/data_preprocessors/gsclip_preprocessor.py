"""Batch assembly for GS-CLIP: stack the Gaussians, make the image crops CLIP inputs."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor

from gsclip_mm.registry import MODELS
from gsclip_mm.structures import is_unfittable

# open_clip.OPENAI_DATASET_MEAN / _STD (CLIP's normalisation, pixel values in [0, 1]).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def resize_pad_square(img: torch.Tensor, size: int, pad_value: float = 0.0) -> torch.Tensor:
    """Fit one image into ``size x size`` keeping its aspect ratio.

    Bilinear resize (antialiased when shrinking) so the longer side is
    ``size``, then pad the shorter side symmetrically with ``pad_value``
    (like open_clip's ``resize_mode='longest'``).

    Args:
        img: ``[3, h, w]`` float (pixel units, any range).
        size: output side ``S``.

    Returns:
        ``[3, S, S]`` float.
    """
    assert img.ndim == 3 and img.shape[0] == 3, f'image must be [3, h, w], got {tuple(img.shape)}'
    h, w = img.shape[1:]
    if h == 0 or w == 0:
        raise ValueError(f'empty image crop of shape {tuple(img.shape)}')
    scale = size / max(h, w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    if (nh, nw) != (h, w):
        img = F.interpolate(img[None], size=(nh, nw), mode='bilinear', align_corners=False,
                            antialias=scale < 1)[0]
    top, left = (size - nh) // 2, (size - nw) // 2
    return F.pad(img, (left, size - nw - left, top, size - nh - top), value=pad_value)


@MODELS.register_module()
class GSCLIPDataPreprocessor(BaseDataPreprocessor):
    """Collated GS-CLIP batch -> model inputs on the model's device.

    Input ``data`` (``gsclip_collate`` / MMEngine's ``pseudo_collate`` of
    ``PackGSCLIPInputs``): ``dict(inputs=dict(gaussians=[Tensor[N, 14]] * B',
    img=[uint8 Tensor[3, h_i, w_i]] * B'), data_samples=[GSCLIPDataSample] * B)``;
    ``img`` may be absent (points-only pipelines, prediction). A list of
    per-sample input dicts is accepted too (``None`` entries are dropped).

    ``B' <= B``: unfittable objects (metainfo ``unfittable``, recorded misses
    of a test set) have no inputs, so the input rows follow the other data
    samples in order; a batch of only unfittable objects has ``inputs={}``
    and gives ``inputs={}``. A row count that does not match is an error.

    Output: ``dict(inputs=dict(gaussians=Tensor[B', N, 14] float32,
    imgs=Tensor[B', 3, S, S] float32), data_samples=[all B])`` (``imgs`` only when
    the batch has crops). Any other per-sample tensor input of equal shapes
    (e.g. ``points``) is stacked the same way as ``gaussians``.

    Args:
        img_size (int | None): CLIP input side ``S``. None: taken from the
            CLIP by ``GSCLIP`` (:meth:`set_clip_input`); 224 when used alone.
        mean, std (Sequence[float] | None): CLIP normalisation in [0, 1]
            pixel units; None: from the CLIP, else open_clip's OpenAI values.
        pad_value (float): padding colour in [0, 255] pixel units (0: black,
            as open_clip pads).
        non_blocking (bool): see ``BaseDataPreprocessor``.
    """

    def __init__(self,
                 img_size: Optional[int] = None,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 pad_value: float = 0.0,
                 non_blocking: bool = False):
        super().__init__(non_blocking=non_blocking)
        self._img_size_given, self._mean_given, self._std_given = img_size, mean, std
        self.img_size = int(img_size) if img_size is not None else 224
        self.pad_value = float(pad_value)
        self._set_norm(mean if mean is not None else CLIP_MEAN, std if std is not None else CLIP_STD)

    def _set_norm(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f'mean/std must be 3 values (std > 0), got mean={mean} std={std}')
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        # Non-persistent: derived from config, not checkpoint state.
        self.register_buffer('_mean_t', torch.tensor(self.mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer('_std_t', torch.tensor(self.std).view(1, 3, 1, 1) * 255, persistent=False)

    def set_clip_input(self, img_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        """Adopt the CLIP's input size / normalisation where the config left them None.

        Raises:
            ValueError: an explicit ``img_size`` differs from the CLIP's.
        """
        if self._img_size_given is not None and int(self._img_size_given) != int(img_size):
            raise ValueError(f'data_preprocessor.img_size={self._img_size_given} but the CLIP expects '
                             f'{img_size}x{img_size} inputs; set img_size=None (follow the CLIP) or {img_size}')
        self.img_size = int(img_size)
        self._set_norm(self._mean_given if self._mean_given is not None else mean,
                       self._std_given if self._std_given is not None else std)

    def image_signature(self) -> str:
        """Everything that decides the tensor of a crop (part of the image-embedding cache key)."""
        return (f'size={self.img_size}|resize=bilinear-longest-pad({self.pad_value:g})|'
                f'mean={",".join(f"{v:.6g}" for v in self.mean)}|std={",".join(f"{v:.6g}" for v in self.std)}')

    def preprocess_images(self, imgs: Sequence[torch.Tensor]) -> torch.Tensor:
        """``B`` uint8 ``[3, h_i, w_i]`` RGB crops -> ``[B, 3, S, S]`` normalised float."""
        out = []
        for i, img in enumerate(imgs):
            if not isinstance(img, torch.Tensor) or img.ndim != 3 or img.shape[0] != 3:
                raise ValueError(f'image crop {i} must be a [3, h, w] tensor (PackGSCLIPInputs), got '
                                 f'{type(img).__name__} {tuple(getattr(img, "shape", ()))}')
            out.append(resize_pad_square(img.float(), self.img_size, self.pad_value))
        batch = torch.stack(out)  # [B, 3, S, S] in [0, 255]
        return (batch - self._mean_t.to(batch.device)) / self._std_t.to(batch.device)

    @staticmethod
    def _stack(name: str, items: Union[torch.Tensor, List[torch.Tensor]]) -> torch.Tensor:
        """Stack per-sample tensors of one key to ``[B, ...]`` float32."""
        if isinstance(items, torch.Tensor):
            return items.float()
        shapes = {tuple(t.shape) for t in items}
        if len(shapes) != 1:
            raise ValueError(f'cannot batch {name!r}: per-sample shapes differ {sorted(shapes)}; '
                             f'sample a fixed number of rows first (SampleGaussians num_points)')
        return torch.stack(list(items)).float()

    def forward(self, data: dict, training: bool = False) -> dict:
        """Cast to the device, stack, and turn crops into CLIP inputs (see the class docstring)."""
        data = self.cast_data(data)
        inputs, samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, (list, tuple)):  # list of per-sample dicts; None: an unfittable object
            inputs = [d for d in inputs if d is not None]
            inputs = {k: [d[k] for d in inputs] for k in inputs[0]} if inputs else {}
        num_fitted = None if samples is None else sum(not is_unfittable(ds) for ds in samples)
        if num_fitted == 0 and not inputs:
            return dict(inputs={}, data_samples=samples)
        if not isinstance(inputs, dict) or 'gaussians' not in inputs and 'points' not in inputs:
            raise KeyError(f'batch inputs need "gaussians" (or "points"); got '
                           f'{sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__}')
        out = {}
        for key, value in inputs.items():
            if key in ('img', 'imgs'):
                if value is not None and len(value) > 0:
                    out['imgs'] = self.preprocess_images(value)
            else:
                out[key] = self._stack(key, value)
        rows = {v.shape[0] for v in out.values()}
        if num_fitted is not None and rows != {num_fitted}:
            raise ValueError(f'the batch has {"/".join(map(str, sorted(rows)))} input rows but {num_fitted} of its {len(samples)} data samples '
                             f'are fittable (no metainfo "unfittable"); collate with gsclip_collate '
                             f'(collate_fn=dict(type="gsclip_collate"))')
        return dict(inputs=out, data_samples=samples)
