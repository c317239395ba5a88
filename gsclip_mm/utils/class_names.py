"""Class-name spelling shared by the prompts and the metric."""


def readable_class_name(name: str) -> str:
    """``'night_stand'`` / ``'Night-Stand'`` -> ``'night stand'``.

    What goes into the CLIP prompts, and the key by which the metric matches a
    dataset's class names to the evaluation vocabulary across spellings.
    """
    return ' '.join(str(name).replace('_', ' ').replace('-', ' ').split()).lower()
