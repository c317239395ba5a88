"""SUN RGB-D raw object names -> its 37 segmentation classes, by a table shipped as data.

SUN RGB-D's 3D boxes carry free-text names (hundreds of them: ``night_stand``
and ``nightstand``, ``chairs``, ``coffee table``, typos). The SUN RGB-D
toolbox's own seg37 mapping takes only each class's exact name; ours
normalises the name, then looks it up in ``sunrgbd37_mapping.json`` (beside
this file), whose ``rules`` say exactly how (normalisation, synonyms, names
deliberately left without a class, plural stripping) and whose groups say
why. The class list itself is :data:`gsclip_mm.structures.categories.SUNRGBD37_CLASSES`.
"""
import hashlib
import json
import os.path as osp
import re
from typing import Dict, List, NamedTuple, Optional

from gsclip_mm.structures.categories import SUNRGBD37_CLASSES

#: The mapping table shipped with the package.
DEFAULT_MAPPING_FILE = osp.join(osp.dirname(osp.abspath(__file__)), 'sunrgbd37_mapping.json')

# Singular candidates of a plural ending, tried in this order (rule 4 of the table); -es only after a
# sibilant, as English forms it ('boxes', 'couches'), so that 'tubes' is never read as 'tub'.
_PLURAL_ENDINGS = (('ies', 'y'), ('ves', 'f'), ('ves', 'fe'), ('ches', 'ch'), ('shes', 'sh'), ('sses', 'ss'),
                   ('xes', 'x'), ('zes', 'z'), ('s', ''))


def normalize_name(raw: str) -> str:
    """Lower-case; each run of characters other than a-z0-9 becomes one ``_``; none at the ends."""
    return re.sub(r'[^a-z0-9]+', '_', raw.lower()).strip('_')


def singular_candidates(name: str) -> List[str]:
    """Singulars to try for a normalised plural, in rule order (``'boxes'`` -> ``['box', 'boxe']``).

    Only names longer than 3 characters that end in ``s`` but not ``ss``;
    only the end of the whole name changes.
    """
    if len(name) <= 3 or not name.endswith('s') or name.endswith('ss'):
        return []
    return [name[:-len(end)] + repl for end, repl in _PLURAL_ENDINGS if name.endswith(end)]


class NameMatch(NamedTuple):
    """How a raw name maps: ``label`` indexes ``SUNRGBD37_CLASSES`` (-1: no class)."""
    label: int
    class_name: Optional[str]
    rule: str  # 'class' | 'synonym' | 'plural' | 'no_class' | 'unknown'
    normalized: str


class SUNRGBD37Mapping:
    """The raw-name -> 37-class table (:data:`DEFAULT_MAPPING_FILE` unless ``path`` is given).

    Raises ValueError naming the file when the table is inconsistent: a
    target outside the 37, a name that is not normalised, a name listed
    twice (or also a class name).
    """

    classes = SUNRGBD37_CLASSES

    def __init__(self, path: Optional[str] = None) -> None:
        self.path = path or DEFAULT_MAPPING_FILE
        with open(self.path, 'rb') as f:
            raw = f.read()
        #: SHA-256 of the table's bytes: part of the converter's per-scene record key.
        self.sha256 = hashlib.sha256(raw).hexdigest()
        try:
            table = json.loads(raw.decode('utf-8'))
        except ValueError as e:
            raise ValueError(f'mapping file {self.path} is not valid JSON: {e}') from e
        self.synonyms: Dict[str, str] = {}  # normalised name -> class name
        self.no_class: Dict[str, str] = {}  # normalised name -> why it has no class
        seen = {c: 'the class list' for c in self.classes}
        for group in table.get('synonyms', []):
            if group.get('class') not in self.classes:
                raise ValueError(f'mapping file {self.path}: synonym group target {group.get("class")!r} is not '
                                 f'one of the 37 classes {list(self.classes)}')
            self._add(group, self.synonyms, group['class'], seen)
        for group in table.get('no_class', []):
            self._add(group, self.no_class, group.get('note', ''), seen)
        self.rules: List[str] = list(table.get('rules', []))

    def _add(self, group: dict, table: dict, value: str, seen: dict) -> None:
        for name in group.get('names', []):
            if normalize_name(name) != name:
                raise ValueError(f'mapping file {self.path}: {name!r} is not normalised (would be '
                                 f'{normalize_name(name)!r})')
            if name in seen:
                raise ValueError(f'mapping file {self.path}: {name!r} is listed twice (also in {seen[name]})')
            seen[name] = f'group {group.get("class", group.get("note", "")[:40])!r}'
            table[name] = value

    def _exact(self, name: str) -> Optional[NameMatch]:
        """Rules 2-3 for an already normalised name, or None."""
        if name in self.classes:
            return NameMatch(self.classes.index(name), name, 'class', name)
        if name in self.synonyms:
            cls = self.synonyms[name]
            return NameMatch(self.classes.index(cls), cls, 'synonym', name)
        if name in self.no_class:
            return NameMatch(-1, None, 'no_class', name)
        return None

    def match(self, raw: str) -> NameMatch:
        """Map one raw name (rules 1-5 of the table)."""
        name = normalize_name(raw)
        hit = self._exact(name)
        if hit is not None:
            return hit
        for singular in singular_candidates(name):
            hit = self._exact(singular)
            if hit is not None:
                return hit._replace(rule='plural' if hit.label >= 0 else 'no_class', normalized=name)
        return NameMatch(-1, None, 'unknown', name)
