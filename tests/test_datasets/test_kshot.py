"""KShotDataset: exactly k objects per class, deterministic in the seed, nested in k, short classes counted."""
from collections import Counter
from unittest import mock

import pytest
from mmengine.dataset import BaseDataset

from gsclip_mm.datasets import kshot as kshot_module
from gsclip_mm.registry import DATASETS

CLASSES = ('bed', 'chair', 'sofa', 'lamp')
# objects per class: chair has 20, bed 9, sofa 3 (fewer than 4 and 8), lamp none
COUNTS = dict(bed=9, chair=20, sofa=3)


@DATASETS.register_module(force=True)
class _LabelledToyDataset(BaseDataset):
    """Objects that are just a class label; ``bad`` indices return None from the pipeline (a refetch)."""
    METAINFO = dict(classes=CLASSES)

    def __init__(self, bad=(), **kwargs):
        self.bad = set(bad)
        kwargs.setdefault('serialize_data', False)
        super().__init__(**kwargs)

    def load_data_list(self):
        names = [c for c, n in COUNTS.items() for _ in range(n)]
        names = names[::2] + names[1::2]  # interleave the classes: the picks are not one contiguous run
        return [dict(gt_label=CLASSES.index(c), class_name=c, uid=i) for i, c in enumerate(names)]

    def get_cat_ids(self, idx):
        return [self.get_data_info(idx)['gt_label']]

    def prepare_data(self, idx):
        return None if idx in self.bad else dict(self.get_data_info(idx), idx=idx)


def build(k, seed=0, **kwargs):
    return DATASETS.build(dict(type='KShotDataset', dataset=dict(type='_LabelledToyDataset', **kwargs), k=k,
                               seed=seed))


def class_counts(ds):
    return Counter(CLASSES[ds.get_cat_ids(i)[0]] for i in range(len(ds)))


@pytest.mark.parametrize('k', [1, 2, 4, 8, 16])
def test_keeps_exactly_k_per_class_and_all_of_a_short_class(k):
    ds = build(k)
    assert class_counts(ds) == {c: min(k, n) for c, n in COUNTS.items()}
    assert len(ds) == sum(min(k, n) for n in COUNTS.values())
    assert len(set(ds.indices)) == len(ds.indices)  # no object twice
    assert ds.short_classes == {c: n for c, n in COUNTS.items() if n < k}
    assert ds.empty_classes == ['lamp']
    # the kept items are the wrapped dataset's objects, in index order
    uids = [ds[i]['uid'] for i in range(len(ds))]
    assert uids == sorted(uids) == [ds.dataset.get_data_info(j)['uid'] for j in ds.indices]


def test_short_classes_are_logged():
    with mock.patch.object(kshot_module, 'print_log') as log:
        build(4)
    msg = log.call_args[0][0]
    assert '1 classes have fewer than 4 objects' in msg and "'sofa': 3" in msg and "no object: ['lamp']" in msg


def test_selection_is_deterministic_seeded_and_nested():
    a, b = build(4, seed=0), build(4, seed=0)
    assert a.indices == b.indices
    assert build(4, seed=1).indices != a.indices
    # nested: the 2-shot set of a seed is inside its 4-shot set, which is inside its 8-shot set
    assert set(build(2).indices) <= set(a.indices) <= set(build(8).indices)
    # a class's pick does not depend on the other classes: chair's 4 from the mixed set == from kshot_indices
    labels = [a.dataset.get_cat_ids(i)[0] for i in range(len(a.dataset))]
    chair = [i for i in a.indices if labels[i] == CLASSES.index('chair')]
    assert chair == kshot_module.kshot_indices([lab if lab == 1 else 1000 for lab in labels], 4, 0)[1]


def test_lazy_init_and_wrapper_protocol():
    ds = DATASETS.build(dict(type='KShotDataset', dataset=dict(type='_LabelledToyDataset', lazy_init=True), k=2,
                             lazy_init=True))
    assert not ds._fully_initialized and ds.metainfo['classes'] == CLASSES
    assert len(ds) == 2 + 2 + 2  # __len__ initialises
    assert ds.get_data_info(0)['uid'] == ds.dataset.get_data_info(ds.indices[0])['uid']
    with pytest.raises(NotImplementedError):
        ds.get_subset_([0])


def test_refetch_stays_inside_the_kept_objects():
    ref = build(2)
    bad = {ref.indices[0]}
    ds = build(2, bad=bad, max_refetch=50)
    for _ in range(20):
        item = ds[0]
        assert item['idx'] in set(ds.indices) - bad


@pytest.mark.parametrize('k', [0, 1.5, -1])
def test_invalid_k(k):
    with pytest.raises(ValueError, match='k >= 1'):
        build(k)
