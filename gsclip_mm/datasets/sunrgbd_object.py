"""One sample per annotated object of SUN RGB-D scenes, from mmdetection3d's converted layout.

The layout is what ``tools/create_data.py sunrgbd`` of mmdetection3d writes, and
what our ``tools/dataset_converters/sunrgbd_converter.py`` (every object, 37
classes) and ``tools/dataset_converters/make_synthetic_sunrgbd.py`` write::

    data_root/
        sunrgbd_infos_{train,val}.pkl       # {'metainfo', 'data_list'}
        points/*.bin                        # float32 [N, 6]: xyz rgb (rgb in [0, 1])
        sunrgbd_trainval/image/*.jpg

Each scene info holds ``lidar_points.lidar_path``, ``images.CAM0`` (``img_path``,
``height``, ``width``, ``depth2img``) and ``instances`` (``bbox``, ``bbox_3d``,
``bbox_label_3d``); see ``data/sunrgbd_sample/README.md``.
"""
import logging
import os.path as osp
from collections import Counter
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset, force_full_init
from mmengine.fileio import exists, join_path
from mmengine.logging import print_log

from gsclip_mm.gaussians import GaussianFitter
from gsclip_mm.gaussians.cache import file_sha256, points_sha256
from gsclip_mm.registry import DATASETS, TRANSFORMS
from gsclip_mm.structures import GSCLIPDataSample
from gsclip_mm.structures.boxes import points_in_rboxes
from gsclip_mm.structures.categories import SUNRGBD_CLASSES
from gsclip_mm.utils.errors import ObjectError
from .utils import load_infos, load_points


def split_units(num: int, train_ratio: float, val_ratio: float, seed: int) -> np.ndarray:
    """``[num]`` array of ``'train'`` / ``'val'`` / ``'test'``: a seeded 9:1-style cut, then val from train.

    The first ``round(train_ratio * num)`` units of a permutation (seeded by
    ``seed``) are training units, the rest test; of the training units, the
    first ``round(val_ratio * n_train)`` of a second permutation (seeded by
    ``seed + 1``) are validation units. The test units do not depend on
    ``val_ratio``.
    """
    order = np.random.default_rng(seed).permutation(num)
    n_train = int(round(train_ratio * num))
    out = np.full(num, 'test', dtype=object)
    train = order[:n_train]
    out[train] = 'train'
    n_val = int(round(val_ratio * n_train))
    out[train[np.random.default_rng(seed + 1).permutation(n_train)[:n_val]]] = 'val'
    return out


def _get(d: Mapping, key_path: str, where: str):
    """``d['a']['b']`` for ``key_path='a.b'``; a KeyError naming the missing key and where."""
    node = d
    for part in key_path.split('.'):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f'{where} has no key {key_path!r} (missing {part!r}): not an mmdetection3d '
                           f'SUN RGB-D info')
        node = node[part]
    return node


@DATASETS.register_module()
class SUNRGBDObjectDataset(BaseDataset):
    """SUN RGB-D object instances (points + image crop + class name).

    One entry per object instance with the keys ``sample_idx``,
    ``instance_idx``, ``lidar_path``, ``num_pts_feats``, ``img_path``,
    ``depth2img`` ([3, 3] float64), ``img_shape`` ((h, w)), ``bbox`` ([4]
    float32, x1 y1 x2 y2), ``bbox_3d`` ([7] float32, centre, sizes, yaw),
    ``gt_label``, ``class_name``, ``img_sha256`` (of the image file's bytes)
    ``points_sha256`` (of the object's points, as ``LoadObjectPoints``
    gives them) and ``scene_points_sha256`` (of all the scene's points): the
    content hashes that key the Gaussian and CLIP caches, computed once here.

    Classes. ``ann_classes`` is the label space of the infos'
    ``bbox_label_3d``: the argument if given, else the infos' own
    ``metainfo['classes']`` (or ``metainfo['categories']``, name -> index),
    else mmdetection3d's 10 classes. ``metainfo=dict(classes=...)`` picks and
    orders the classes to keep (by name); objects of other classes are dropped
    and counted. A 37-class conversion passes ``ann_classes=<its 37 names>``.

    Split (paper section 5.1: the triples are divided 9:1 into training and
    testing). ``split=None`` keeps the infos' own split (the file is the
    split). ``split='train'|'val'|'test'`` cuts one pool deterministically:
    a seeded permutation (``split_seed``) of the file's units gives the first
    ``round(split_ratio * n)`` to training and the rest to ``'test'``; a
    second seeded permutation of the training units holds out
    ``round(val_ratio * n_train)`` of them as ``'val'`` (ours: what training
    scores and picks checkpoints on, so the test split is touched only by
    ``tools/test.py``); ``'train'`` is the rest. The unit is the scene
    (``split_by='scene'``, the default: no scene on both sides, so no object
    is tested on a room it was trained on) or the object (``'object'``, the
    literal reading of the paper). The cut is made before any filtering, so
    the splits stay disjoint whatever ``min_points`` or ``classes`` each
    side uses.

    Filtering (counted and logged): objects of classes not kept, degenerate
    boxes (non-positive 3D size, or a 2D box with no area inside the image),
    2D boxes with a side under ``min_box_side`` pixels inside the image,
    boxes with no points, and boxes with fewer than ``min_points`` points
    (counted per scene, all boxes at once, with the same test as
    ``LoadObjectPoints``).

    Unusable objects never stop a run. Objects that ``tools/fit_gaussians.py``
    recorded as unfittable (``fit_failures.json`` in the cache of the fit
    ``gaussian_fit`` names) are dropped from a training set and kept in a
    test set as scored misses; both are counted and logged with their
    reasons. An object whose pipeline raises :class:`ObjectError` (an
    undecodable image, bad points or camera, a fit that cannot start) is
    replaced by another one in training (MMEngine's refetch) and becomes a
    miss in testing: the sample ``dict(inputs=None, data_samples=...)`` whose
    metainfo has ``unfittable`` (the reason), which ``gsclip_collate`` keeps
    beside the model's batch and the metric counts as wrong. The test set is
    never silently shrunk.

    Args:
        ann_file (str): infos pkl, relative to ``data_root`` unless absolute.
        data_root (str): dataset root.
        data_prefix (dict): ``pts`` and ``img`` folders under ``data_root``.
        metainfo (dict, optional): ``classes`` to keep (see above).
        ann_classes (Sequence[str], optional): label space of the infos.
        min_points (int): minimum number of points inside an object's box
            (the paper's first author's pipeline: 100 Gaussians, i.e. points).
        min_box_side (float): minimum side in pixels of the 2D box inside the
            image (his pipeline: 10); 0 keeps every box with area.
        split (str, optional): ``'train'``, ``'val'``, ``'test'`` or None.
        split_ratio (float): share of the units that go to training (train +
            val); the paper: 0.9.
        val_ratio (float): share of the training units held out as ``'val'``
            (ours: 0.1).
        split_by (str): ``'scene'`` (default) or ``'object'``.
        split_seed (int): seed of the split permutations.
        backend_args (dict, optional): mmengine file backend arguments.
        gaussian_fit (dict | GaussianFitter | bool, optional): the Gaussian
            fit whose failure record applies: its transform config (the
            config's ``FitGaussians`` dict, any subclass too), a transform
            holding a ``GaussianFitter`` (``.fitter``), or the fitter itself;
            None (default): the pipeline's fitting step (the first transform
            holding a ``GaussianFitter``); False: none.
        **kwargs: the rest of ``BaseDataset``'s arguments (``pipeline``,
            ``test_mode``, ``indices``, ``lazy_init``, ...).
    """

    METAINFO = dict(classes=SUNRGBD_CLASSES)

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 data_prefix: dict = dict(pts='points', img='sunrgbd_trainval/image'),
                 metainfo: Optional[Mapping] = None,
                 ann_classes: Optional[Sequence[str]] = None,
                 min_points: int = 10,
                 min_box_side: float = 0.0,
                 split: Optional[str] = None,
                 split_ratio: float = 0.9,
                 val_ratio: float = 0.1,
                 split_by: str = 'scene',
                 split_seed: int = 0,
                 backend_args: Optional[dict] = None,
                 gaussian_fit=None,
                 **kwargs) -> None:
        if split not in (None, 'train', 'val', 'test'):
            raise ValueError(f"split must be None, 'train', 'val' or 'test', got {split!r}")
        if not 0.0 < split_ratio < 1.0:
            raise ValueError(f'split_ratio must be in (0, 1), got {split_ratio}')
        if not 0.0 <= val_ratio < 1.0:
            raise ValueError(f'val_ratio must be in [0, 1), got {val_ratio}')
        if split_by not in ('scene', 'object'):
            raise ValueError(f"split_by must be 'scene' or 'object', got {split_by!r}")
        if min_points < 1:
            raise ValueError(f'min_points must be >= 1, got {min_points}')
        for key in ('pts', 'img'):
            if key not in data_prefix:
                raise KeyError(f'data_prefix needs {key!r}, got {dict(data_prefix)}')
        self._user_classes = tuple(metainfo['classes']) if metainfo and 'classes' in metainfo else None
        self._ann_classes_arg = tuple(ann_classes) if ann_classes is not None else None
        self.min_points = int(min_points)
        self.min_box_side = float(min_box_side)
        self.split = split
        self.split_ratio = float(split_ratio)
        self.val_ratio = float(val_ratio)
        self.split_by = split_by
        self.split_seed = int(split_seed)
        self.backend_args = backend_args
        self.filter_counts: dict = {}
        self._gaussian_fit = TRANSFORMS.build(gaussian_fit) if isinstance(gaussian_fit, Mapping) else gaussian_fit
        # Build pipeline dicts in our registry (as mmpretrain does), so the dataset works without a
        # default scope; Compose would look them up in MMEngine's root registry.
        kwargs['pipeline'] = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in kwargs.get('pipeline', [])]
        super().__init__(ann_file=ann_file, data_root=data_root, data_prefix=data_prefix, metainfo=metainfo,
                         **kwargs)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        """Read the infos, cut the split, count points per box; one dict per kept object."""
        annotations = load_infos(self.ann_file, self.backend_args)
        if not isinstance(annotations, Mapping):
            raise TypeError(f'{self.ann_file}: expected a dict with data_list and metainfo, '
                            f'got {type(annotations).__name__}')
        raw_list = _get(annotations, 'data_list', self.ann_file)
        file_meta = annotations.get('metainfo') or {}
        for k, v in file_meta.items():
            self._metainfo.setdefault(k, v)
        ann_classes = self._resolve_ann_classes(file_meta)
        classes = self._user_classes if self._user_classes is not None else ann_classes
        unknown = [c for c in classes if c not in ann_classes]
        if unknown:
            raise ValueError(f'classes {unknown} are not in the label space of {self.ann_file} '
                             f'({len(ann_classes)} classes: {list(ann_classes)}); pass ann_classes=<the '
                             f'names of the conversion, e.g. the 37 classes> to change it')
        self._metainfo['classes'] = tuple(classes)
        self._metainfo['ann_classes'] = tuple(ann_classes)
        label_map = {i: classes.index(c) if c in classes else -1 for i, c in enumerate(ann_classes)}

        keep_split = self._split_mask(raw_list)
        counts = Counter({k: 0 for k in ('total', 'out_of_split', 'ignored_class', 'invalid_box', 'small_box',
                                         'empty', 'too_few_points', 'unfittable')})
        data_list, offset = [], 0
        for scene_idx, info in enumerate(raw_list):
            where = f'{self.ann_file}: data_list[{scene_idx}]'
            instances = _get(info, 'instances', where)
            in_split = keep_split[offset:offset + len(instances)]
            offset += len(instances)
            data_list.extend(self._parse_scene(info, scene_idx, instances, in_split, label_map, classes, where,
                                               counts))
        data_list = self._apply_fit_failures(data_list, counts)
        counts['kept'] = len(data_list)
        self.filter_counts = dict(counts)
        print_log(
            f'SUNRGBDObjectDataset({self.ann_file}, split={self.split}): {len(raw_list)} scenes, '
            f'{counts["total"]} objects; kept {counts["kept"]}; dropped {counts["out_of_split"]} outside the '
            f'split, {counts["ignored_class"]} of classes not kept, {counts["invalid_box"]} with degenerate '
            f'boxes, {counts["small_box"]} with a 2D box side under {self.min_box_side:g} px, '
            f'{counts["empty"]} with no points in the box, {counts["too_few_points"]} with fewer than '
            f'{self.min_points} points, {counts["unfittable"] if not self.test_mode else 0} unfittable. '
            f'Classes ({len(classes)}): {list(classes)}',
            logger='current', level=logging.INFO if data_list else logging.WARNING)
        return data_list

    def _resolve_ann_classes(self, file_meta: Mapping) -> tuple:
        """The label space of ``bbox_label_3d``: argument > the infos' metainfo > mmdetection3d's 10."""
        if self._ann_classes_arg is not None:
            return self._ann_classes_arg
        if 'classes' in file_meta:
            return tuple(file_meta['classes'])
        if 'categories' in file_meta:  # mmdetection3d >= 1.1 writes {name: index}
            cats = file_meta['categories']
            return tuple(sorted(cats, key=cats.get))
        return SUNRGBD_CLASSES

    def _split_mask(self, raw_list: Sequence[Mapping]) -> np.ndarray:
        """``[num_instances]`` bool over all instances of the file, in file order: in the asked split."""
        sizes = [len(_get(info, 'instances', f'{self.ann_file}: data_list[{i}]')) for i, info in enumerate(raw_list)]
        if self.split is None:
            return np.ones(sum(sizes), dtype=bool)
        units = len(sizes) if self.split_by == 'scene' else sum(sizes)
        unit_split = split_units(units, self.split_ratio, self.val_ratio, self.split_seed)  # [units]
        if self.split_by == 'scene':  # every object of a scene goes where its scene goes
            unit_split = np.repeat(unit_split, sizes)
        return unit_split == self.split

    def _parse_scene(self, info: Mapping, scene_idx: int, instances: Sequence[Mapping], in_split: np.ndarray,
                     label_map: dict, classes: Sequence[str], where: str, counts: Counter) -> List[dict]:
        """The kept objects of one scene (reads its points once if any object is a candidate)."""
        counts['total'] += len(instances)
        candidates = []  # (instance_idx, label, bbox [4], bbox_3d [7])
        cam = None
        for j, inst in enumerate(instances):
            iwhere = f'{where}.instances[{j}]'
            bbox = np.asarray(_get(inst, 'bbox', iwhere), dtype=np.float32).reshape(-1)
            bbox_3d = np.asarray(_get(inst, 'bbox_3d', iwhere), dtype=np.float32).reshape(-1)
            label = inst['bbox_label_3d'] if 'bbox_label_3d' in inst else _get(inst, 'bbox_label', iwhere)
            if bbox.shape != (4,) or bbox_3d.shape != (7,):
                raise ValueError(f'{iwhere}: bbox must have 4 values and bbox_3d 7, got {bbox.tolist()} and '
                                 f'{bbox_3d.tolist()}')
            if not in_split[j]:
                counts['out_of_split'] += 1
                continue
            if int(label) >= len(label_map):
                raise ValueError(f'{iwhere}: label {int(label)} is outside the {len(label_map)}-class label space '
                                 f'{list(self._metainfo["ann_classes"])}; pass ann_classes=<the names of the '
                                 f'conversion> (e.g. its 37 classes)')
            label = label_map.get(int(label), -1)
            if label < 0:  # mmdetection3d marks ignored objects with -1 too
                counts['ignored_class'] += 1
                continue
            if cam is None:
                cam = self._parse_camera(info, where)
            if not self._valid_boxes(bbox, bbox_3d, cam['img_shape']):
                counts['invalid_box'] += 1
                continue
            if min(self._visible_box_size(bbox, cam['img_shape'])) < self.min_box_side:
                counts['small_box'] += 1
                continue
            candidates.append((j, label, bbox, bbox_3d))
        if not candidates:
            return []

        lidar_path = join_path(self.data_prefix['pts'], _get(info, 'lidar_points.lidar_path', where))
        num_feats = int(info['lidar_points'].get('num_pts_feats', 6))
        if not exists(cam['img_path'], backend_args=self.backend_args):
            raise FileNotFoundError(f'image file not found: {cam["img_path"]} ({where})')
        points = load_points(lidar_path, num_feats, self.backend_args)  # [N, F]
        boxes = np.stack([c[3] for c in candidates])  # [B, 7]
        inside = points_in_rboxes(points, boxes)  # [B, N]
        num_in = inside.sum(1)  # [B]
        img_sha256 = file_sha256(cam['img_path'], self.backend_args)
        scene_sha256 = points_sha256(points[:, :6])  # keys the scene fit (FitGaussians mode='scene')

        sample_idx = info.get('sample_idx')
        if sample_idx is None:
            stem = osp.splitext(osp.basename(lidar_path))[0]
            sample_idx = int(stem) if stem.isdigit() else scene_idx
        kept = []
        for (j, label, bbox, bbox_3d), n, mask in zip(candidates, num_in, inside):
            if n == 0:
                counts['empty'] += 1
            elif n < self.min_points:
                counts['too_few_points'] += 1
            else:
                kept.append(dict(
                    # MMEngine's get_data_info overwrites 'sample_idx' with the dataset index; ours
                    # rides under a private key and is put back by get_data_info below.
                    _scene_sample_idx=int(sample_idx),
                    instance_idx=j, lidar_path=lidar_path, num_pts_feats=num_feats,
                    img_path=cam['img_path'], depth2img=cam['depth2img'].copy(), img_shape=cam['img_shape'],
                    bbox=bbox, bbox_3d=bbox_3d, gt_label=int(label), class_name=classes[label],
                    img_sha256=img_sha256, points_sha256=points_sha256(points[mask, :6]),
                    scene_points_sha256=scene_sha256))
        return kept

    def _fit_step(self) -> Optional[GaussianFitter]:
        """The fitting service whose failure record applies (``gaussian_fit``), when it has a cache; else None."""
        fit = self._gaussian_fit
        if fit is None:  # the pipeline's fitting step: a transform that holds the service (subclasses too)
            fit = next((t for t in getattr(self.pipeline, 'transforms', [])
                        if isinstance(getattr(t, 'fitter', None), GaussianFitter)), None)
        fit = getattr(fit, 'fitter', fit) if fit is not False else None
        if fit is not None and not isinstance(fit, GaussianFitter):
            raise TypeError(f'gaussian_fit must be a fitting step config, a transform with a GaussianFitter, a '
                            f'GaussianFitter, None or False; got {type(fit).__name__}')
        return fit if fit is not None and fit.cache is not None else None

    def _apply_fit_failures(self, data_list: List[dict], counts: Counter) -> List[dict]:
        """Drop (training) or mark as misses (testing) the objects recorded as unfittable; log the reasons."""
        fit = self._fit_step()
        record = fit.failures() if fit is not None else {}
        if not record:
            return data_list
        kept, reasons = [], Counter()
        for info in data_list:
            failure = fit.failure_of(info, record)
            if failure is None:
                kept.append(info)
                continue
            reasons[failure['reason'].split(':')[0]] += 1
            counts['unfittable'] += 1
            if self.test_mode:
                kept.append(dict(info, unfittable=failure['reason']))
        if reasons:
            print_log(f'{self.ann_file}: {sum(reasons.values())} objects are recorded as unfittable in '
                      f'{fit.cache.failures_path} ({dict(reasons)}); '
                      + ('they stay in the test set as misses (scored wrong)' if self.test_mode
                         else 'dropped from training'), logger='current', level=logging.WARNING)
        return kept

    def prepare_data(self, idx: int):
        """The pipeline's output; for an unusable object None (training: MMEngine refetches) or a miss (testing)."""
        info = self.get_data_info(idx)
        reason = info.get('unfittable')
        if reason is None:
            try:
                return self.pipeline(info)
            except ObjectError as e:
                reason = f'{type(e).__name__}: {e}'
                print_log(f'skipping object {info["img_path"]}#{info["instance_idx"]}: {reason}', logger='current',
                          level=logging.WARNING)
                if not self.test_mode:
                    return None
        return self.miss_sample(info, reason)

    @staticmethod
    def miss_sample(info: dict, reason: str) -> dict:
        """A test object with no usable data (a recorded miss): no inputs (``gsclip_collate`` moves it beside
        the model's batch), and the reason as metainfo ``unfittable`` (what ``ZeroShotAccuracy`` counts)."""
        keys = ('class_name', 'sample_idx', 'instance_idx', 'img_path', 'img_sha256')
        sample = GSCLIPDataSample(metainfo=dict({k: info[k] for k in keys if k in info}, unfittable=reason))
        sample.set_gt_label(info['gt_label'])
        return dict(inputs=None, data_samples=sample)

    def _parse_camera(self, info: Mapping, where: str) -> dict:
        """``img_path`` (joined), ``img_shape`` (h, w) and ``depth2img`` [3, 3] float64 of a scene."""
        depth2img = np.asarray(_get(info, 'images.CAM0.depth2img', where), dtype=np.float64)
        if depth2img.shape != (3, 3):
            raise ValueError(f'{where}: images.CAM0.depth2img must be 3x3, got shape {depth2img.shape}')
        return dict(
            img_path=join_path(self.data_prefix['img'], _get(info, 'images.CAM0.img_path', where)),
            img_shape=(int(_get(info, 'images.CAM0.height', where)), int(_get(info, 'images.CAM0.width', where))),
            depth2img=depth2img)

    @staticmethod
    def _visible_box_size(bbox: np.ndarray, img_shape: tuple) -> Tuple[float, float]:
        """(width, height) in pixels of the part of the 2D box inside the image (<= 0: none)."""
        h, w = img_shape
        x1, x2 = np.clip(bbox[[0, 2]], 0, w)
        y1, y2 = np.clip(bbox[[1, 3]], 0, h)
        return float(x2 - x1), float(y2 - y1)

    @classmethod
    def _valid_boxes(cls, bbox: np.ndarray, bbox_3d: np.ndarray, img_shape: tuple) -> bool:
        """Finite boxes, positive 3D sizes, and a 2D box with area inside the image."""
        if not (np.isfinite(bbox).all() and np.isfinite(bbox_3d).all() and (bbox_3d[3:6] > 0).all()):
            return False
        return min(cls._visible_box_size(bbox, img_shape)) > 0

    def _serialize_data(self) -> Tuple[np.ndarray, np.ndarray]:
        """MMEngine's, except that an empty object list (everything filtered) gives empty buffers."""
        if not self.data_list:  # np.concatenate of nothing would raise an unrelated error
            return np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64)
        return super()._serialize_data()

    # ------------------------------------------------------------------ access
    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """The object's dict; ``sample_idx`` is the scene's index (MMEngine's would be ``idx``)."""
        info = super().get_data_info(idx)
        info['sample_idx'] = info.pop('_scene_sample_idx')
        return info

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        """``[gt_label]``: what MMEngine's ``ClassBalancedDataset`` counts."""
        return [self.get_data_info(idx)['gt_label']]
