"""k-shot training sets: keep ``k`` objects per class of a dataset (CLIP2Point's few-shot protocol)."""
import copy
import logging
from collections import defaultdict
from typing import Dict, List, Union

import numpy as np
from mmengine.dataset import BaseDataset, force_full_init
from mmengine.logging import print_log

from gsclip_mm.registry import DATASETS


def kshot_indices(labels: List[int], k: int, seed: int) -> Dict[int, List[int]]:
    """Per class, the (sorted) dataset indices of its ``k`` chosen objects.

    A class's choice is the first ``k`` of a permutation of its objects drawn from a generator seeded by
    ``(seed, class)``: deterministic, independent of the other classes, and nested (the k-shot set of a
    seed holds its (k-1)-shot set; ours, so rows of a few-shot table differ only by the added shots).
    A class with fewer than ``k`` objects keeps all of them.

    Args:
        labels: ``[N]`` class id of each object.
        k: objects per class (>= 1).
        seed: the selection seed (>= 0).
    """
    by_class: Dict[int, List[int]] = defaultdict(list)
    for idx, label in enumerate(labels):
        by_class[label].append(idx)
    chosen = {}
    for label, idxs in sorted(by_class.items()):
        order = np.random.default_rng([seed, label]).permutation(len(idxs))
        chosen[label] = sorted(idxs[i] for i in order[:k])
    return chosen


@DATASETS.register_module()
class KShotDataset:
    """A wrapper that keeps ``k`` objects per class of the wrapped dataset, chosen by a seed.

    Classes come from the wrapped dataset's ``get_cat_ids`` (one id per object). Classes with fewer than
    ``k`` objects keep all of them; they are counted (:attr:`short_classes`), and so are the classes of
    ``metainfo['classes']`` with no object at all (:attr:`empty_classes`), and both are logged. Like
    MMEngine's wrappers (``ClassBalancedDataset``), it is not a ``BaseDataset`` and can initialise lazily.

    In training, an object whose pipeline returns None (MMEngine's refetch rule) is replaced by another of
    the *kept* objects, not by one of the whole wrapped set (which ``BaseDataset.__getitem__`` would do).

    Args:
        dataset (BaseDataset | dict): the dataset (or its config).
        k (int): objects per class (CLIP2Point: 1, 2, 4, 8, 16).
        seed (int): the selection seed (see :func:`kshot_indices`).
        lazy_init (bool): defer loading the annotations until first use.
    """

    def __init__(self, dataset: Union[BaseDataset, dict], k: int, seed: int = 0, lazy_init: bool = False):
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        if not isinstance(dataset, BaseDataset):
            raise TypeError(f'KShotDataset wraps a BaseDataset or its config, got {type(dataset)}')
        if int(k) != k or k < 1 or int(seed) != seed or seed < 0:
            raise ValueError(f'KShotDataset needs an integer k >= 1 and seed >= 0, got k={k!r}, seed={seed!r}')
        self.dataset = dataset
        self.k, self.seed = int(k), int(seed)
        self._metainfo = dataset.metainfo
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """The wrapped dataset's metainfo (a copy)."""
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        """Load the wrapped dataset and choose the k-shot objects."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        labels = [self._label(i) for i in range(len(self.dataset))]
        chosen = kshot_indices(labels, self.k, self.seed)
        counts = {c: labels.count(c) for c in chosen}
        self.indices: List[int] = sorted(i for idxs in chosen.values() for i in idxs)
        names = list(self.dataset.metainfo.get('classes') or [])
        self.short_classes = {self._name(c, names): n for c, n in counts.items() if n < self.k}
        self.empty_classes = [n for i, n in enumerate(names) if i not in counts]
        self._fully_initialized = True
        self._log(len(labels), len(chosen))

    def _label(self, idx: int) -> int:
        cat_ids = set(self.dataset.get_cat_ids(idx))
        if len(cat_ids) != 1 or min(cat_ids) < 0:
            raise ValueError(f'KShotDataset needs one class id >= 0 per object; object {idx} has {sorted(cat_ids)}')
        return int(cat_ids.pop())

    @staticmethod
    def _name(cat_id: int, names: List[str]) -> Union[str, int]:
        return names[cat_id] if 0 <= cat_id < len(names) else cat_id

    def _log(self, num_objects: int, num_classes: int) -> None:
        msg = (f'KShotDataset(k={self.k}, seed={self.seed}): kept {len(self.indices)} of {num_objects} objects '
               f'over {num_classes} classes')
        if self.short_classes:
            msg += (f'; {len(self.short_classes)} classes have fewer than {self.k} objects and keep all of them: '
                    f'{self.short_classes}')
        if self.empty_classes:
            msg += f'; {len(self.empty_classes)} classes have no object: {self.empty_classes}'
        level = logging.WARNING if self.short_classes else logging.INFO
        print_log(msg, logger='current', level=level)

    @force_full_init
    def __len__(self) -> int:
        return len(self.indices)

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        """The wrapped dataset's class ids of the ``idx``-th kept object."""
        return self.dataset.get_cat_ids(self.indices[idx])

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """The wrapped dataset's annotation of the ``idx``-th kept object."""
        return self.dataset.get_data_info(self.indices[idx])

    def __getitem__(self, idx: int):
        if not self._fully_initialized:
            print_log('Please call `full_init` method manually to accelerate the speed.', logger='current',
                      level=logging.WARNING)
            self.full_init()
        ori = self.indices[idx]
        if self.dataset.test_mode:
            return self.dataset[ori]
        for _ in range(self.dataset.max_refetch + 1):
            data = self.dataset.prepare_data(ori)
            if data is not None:
                return data
            ori = self.indices[np.random.randint(len(self.indices))]  # another kept object
        raise RuntimeError(f'KShotDataset: no valid object found after {self.dataset.max_refetch} refetches among '
                           f'the {len(self.indices)} kept objects; check the pipeline')

    def get_subset_(self, indices):
        raise NotImplementedError('KShotDataset does not support get_subset(_): take the subset of the wrapped '
                                  'dataset, then wrap it')

    def get_subset(self, indices):
        self.get_subset_(indices)
