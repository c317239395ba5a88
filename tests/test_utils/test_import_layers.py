"""The package's import graph: every import runs down the layers (or stays in its own subpackage), and no
module reaches itself through imports. Lazy imports inside functions count: they are dependencies too.

Layers, bottom first (peers in one layer may not import each other):

0. ``version``, ``registry``, ``utils``: no gsclip_mm imports beyond these.
1. ``structures`` (data layouts, boxes, class vocabularies), ``ops`` (point ops), ``clip`` (the frozen CLIP).
2. ``gaussians`` (rasterisers, fitting, cache).
3. ``datasets``, ``models``: peers, as in mmdetection3d.
4. ``evaluation``.
"""
import ast
import os
import os.path as osp
from typing import Dict, List, Set, Tuple

PKG_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'gsclip_mm')
LAYERS = (('version', 'registry', 'utils'), ('structures', 'ops', 'clip'), ('gaussians', ), ('datasets', 'models'),
          ('evaluation', ))
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _module_name(path: str) -> str:
    rel = osp.relpath(path, osp.dirname(PKG_DIR))[:-len('.py')].split(os.sep)
    return '.'.join(rel[:-1] if rel[-1] == '__init__' else rel)


def _modules() -> Dict[str, str]:
    """gsclip_mm module name -> file."""
    out = {}
    for root, _, files in os.walk(PKG_DIR):
        for f in files:
            if f.endswith('.py'):
                out[_module_name(osp.join(root, f))] = osp.join(root, f)
    return out


def _imports(name: str, path: str, modules: Dict[str, str], source: str = None) -> List[Tuple[str, int]]:
    """(gsclip_mm module imported, line) for every import in the file (or ``source``), module level or not."""
    is_pkg = path.endswith('__init__.py')
    base = name.split('.') if is_pkg else name.split('.')[:-1]
    out = []
    for node in ast.walk(ast.parse(open(path).read() if source is None else source, path)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level:
                mod = '.'.join(base[:len(base) - node.level + 1] + ([mod] if mod else []))
            # `from pkg import sub` imports the submodule when there is one
            targets = [f'{mod}.{a.name}' if f'{mod}.{a.name}' in modules else mod for a in node.names]
        else:
            continue
        out += [(t, node.lineno) for t in targets if t == 'gsclip_mm' or t.startswith('gsclip_mm.')]
    return out


def _graph() -> Dict[str, Set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        graph[name] = {t for t, _ in _imports(name, path, modules) if t in modules and t != name}
    return graph


def _room(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def upward_imports() -> List[str]:
    modules = _modules()
    bad = []
    for name, path in sorted(modules.items()):
        room = _room(name)
        if room not in LAYER_OF:  # gsclip_mm/__init__.py: the top imports everything
            continue
        for target, line in _imports(name, path, modules):
            other = _room(target)
            if other == room:
                continue
            if other not in LAYER_OF or LAYER_OF[other] >= LAYER_OF[room]:
                bad.append(f'{osp.relpath(path, osp.dirname(PKG_DIR))}:{line}: {room} (layer {LAYER_OF[room]}) '
                           f'imports {target} (layer {LAYER_OF.get(other, "top")})')
    return bad


def import_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_room_has_a_layer():
    rooms = {_room(m) for m in _modules()} - {''}
    assert rooms == set(LAYER_OF), f'subpackages without a layer: {sorted(rooms - set(LAYER_OF))}'


def test_no_upward_import():
    bad = upward_imports()
    assert not bad, 'imports that climb the layers:\n' + '\n'.join(bad)


def test_no_import_cycle():
    cycles = import_cycles(_graph())
    assert not cycles, f'import cycles: {cycles}'


def test_the_checks_can_fail():
    """The checkers find a planted circle and resolve planted absolute and relative imports that climb."""
    assert import_cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    src = 'from gsclip_mm.datasets import utils\ndef f():\n    from ..models import layers\n'
    found = _imports('gsclip_mm.ops.knn', osp.join(PKG_DIR, 'ops', 'knn.py'), _modules(), source=src)
    assert found == [('gsclip_mm.datasets.utils', 1), ('gsclip_mm.models.layers', 3)]


def test_graph_sees_real_edges():
    """The graph holds edges the code is known to have (so an empty graph cannot pass)."""
    graph = _graph()
    assert 'gsclip_mm.gaussians._torch_impl' in graph['gsclip_mm.gaussians.rasterize']
    assert 'gsclip_mm.structures.boxes' in graph['gsclip_mm.gaussians.fitting']
    assert 'gsclip_mm.clip' in graph['gsclip_mm.datasets.transforms.clip_image']
