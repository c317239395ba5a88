"""Class vocabularies: the one place each list of class names is written (as mmpretrain's ``categories.py``)."""

# mmdetection3d's 10 SUN RGB-D detection classes, in the order of its ``bbox_label_3d``.
SUNRGBD_CLASSES = ('bed', 'table', 'sofa', 'chair', 'toilet', 'desk', 'dresser', 'night_stand', 'bookshelf',
                   'bathtub')

# The same 10 classes in the column order of GS-CLIP's Table 1 (its zero-shot vocabulary).
SUNRGBD_TABLE1_ORDER = ('bed', 'bookshelf', 'chair', 'desk', 'sofa', 'table', 'toilet', 'bathtub', 'dresser',
                        'night_stand')
assert sorted(SUNRGBD_TABLE1_ORDER) == sorted(SUNRGBD_CLASSES)

# SUN RGB-D's 37 segmentation classes (NYU-40's first 37; the SUN RGB-D toolbox's seg37 list), in its label
# order (label = index + 1 there, 0 = void), named by the toolbox's raw names ('fridge' and 'tv' where its
# display names say 'refridgerator' and 'television'). The paper (section 5.1) sorts every annotated object
# into them; gsclip_mm.datasets.converters writes bbox_label_3d as an index into this tuple.
SUNRGBD37_CLASSES = ('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window', 'bookshelf',
                     'picture', 'counter', 'blinds', 'desk', 'shelves', 'curtain', 'dresser', 'pillow', 'mirror',
                     'floor_mat', 'clothes', 'ceiling', 'books', 'fridge', 'tv', 'paper', 'towel', 'shower_curtain',
                     'box', 'whiteboard', 'person', 'night_stand', 'toilet', 'sink', 'lamp', 'bathtub', 'bag')
assert len(SUNRGBD37_CLASSES) == 37 and set(SUNRGBD_CLASSES) <= set(SUNRGBD37_CLASSES)

# Named vocabularies, so that configs say ``eval_classes='sunrgbd37'`` instead of restating a list
# (as mmpretrain's zero-shot CLIP takes ``text_prototype='imagenet'``).
VOCABULARIES = dict(sunrgbd10=SUNRGBD_TABLE1_ORDER, sunrgbd37=SUNRGBD37_CLASSES)


def resolve_classes(classes):
    """A vocabulary name (a key of :data:`VOCABULARIES`) -> its classes; a sequence of names -> a tuple."""
    if isinstance(classes, str):
        if classes not in VOCABULARIES:
            raise KeyError(f'unknown class vocabulary {classes!r}; known: {sorted(VOCABULARIES)} (or pass a list)')
        return VOCABULARIES[classes]
    return tuple(classes)
