"""Class vocabularies: the one place each list of class names is written (as mmpretrain's ``categories.py``)."""

# mmdetection3d's 10 SUN RGB-D detection classes, in the order of its ``bbox_label_3d``.
SUNRGBD_CLASSES = ('bed', 'table', 'sofa', 'chair', 'toilet', 'desk', 'dresser', 'night_stand', 'bookshelf',
                   'bathtub')

# The same 10 classes in the column order of GS-CLIP's Table 1 (its zero-shot vocabulary).
SUNRGBD_TABLE1_ORDER = ('bed', 'bookshelf', 'chair', 'desk', 'sofa', 'table', 'toilet', 'bathtub', 'dresser',
                        'night_stand')
assert sorted(SUNRGBD_TABLE1_ORDER) == sorted(SUNRGBD_CLASSES)
