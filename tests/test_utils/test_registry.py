"""gsclip_mm's registries: scope, locations, and use from a foreign scope."""
import subprocess
import sys

from mmengine.registry import DATASETS as ROOT_DATASETS
from mmengine.registry import METRICS as ROOT_METRICS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS
from mmengine.registry import Registry

from gsclip_mm import registry


def test_registries_are_children_of_mmengine_roots():
    pairs = [(registry.MODELS, ROOT_MODELS), (registry.DATASETS, ROOT_DATASETS),
             (registry.TRANSFORMS, ROOT_TRANSFORMS), (registry.METRICS, ROOT_METRICS)]
    for child, root in pairs:
        assert child.scope == 'gsclip_mm'
        assert child.parent is root
        assert root.children['gsclip_mm'] is child


def test_components_land_in_their_registries():
    import gsclip_mm  # noqa: F401
    assert registry.MODELS.get('PointNet2GAF') is not None
    assert registry.MODELS.get('GSCLIP') is not None
    assert registry.MODELS.get('FrozenCLIPHead') is not None
    assert registry.DATASETS.get('SUNRGBDObjectDataset') is not None
    assert registry.TRANSFORMS.get('FitGaussians') is not None
    assert registry.METRICS.get('ZeroShotAccuracy') is not None


def test_foreign_scope_builds_gsclip_component():
    import gsclip_mm  # noqa: F401  (what custom_imports does)
    other_models = Registry('model', parent=ROOT_MODELS, scope='otherproj')
    other_metrics = Registry('metric', parent=ROOT_METRICS, scope='otherproj')
    metric = other_metrics.build(dict(type='gsclip_mm.ZeroShotAccuracy'))
    assert type(metric).__module__.startswith('gsclip_mm.')
    prep = other_models.build(dict(type='gsclip_mm.GSCLIPDataPreprocessor'))
    assert type(prep).__name__ == 'GSCLIPDataPreprocessor'


def test_locations_name_importable_subpackages():
    # `locations` is what lets Runner.from_cfg with default_scope='gsclip_mm'
    # import the components it needs; each must name a real subpackage.
    import importlib
    for reg in (registry.MODELS, registry.DATASETS, registry.TRANSFORMS, registry.METRICS):
        assert reg._locations, reg.name
        for loc in reg._locations:
            importlib.import_module(loc)


def test_default_scope_builds_in_fresh_interpreter():
    code = ('from mmengine.registry import init_default_scope, METRICS, TRANSFORMS\n'
            'init_default_scope("gsclip_mm")\n'
            'print(type(METRICS.build(dict(type="ZeroShotAccuracy"))).__name__)\n'
            'print(type(TRANSFORMS.build(dict(type="NormalizeGaussians"))).__name__)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ['ZeroShotAccuracy', 'NormalizeGaussians']
