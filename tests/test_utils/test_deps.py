"""The import-time dependency check: one list of ranges, in step with setup.cfg and requirements.txt."""
import configparser
import os
import os.path as osp
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from gsclip_mm.utils import deps

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(autouse=True)
def no_skip(monkeypatch):
    """A developer's environment may set the skip variable; these tests need the check on."""
    monkeypatch.delenv(deps.SKIP_ENV, raising=False)


def fake_versions(monkeypatch, overrides):
    """Make the metadata lookup answer ``{distribution: version}`` (``None``: not installed), the real
    versions for the other distributions."""
    real = deps._installed_version
    monkeypatch.setattr(deps, '_installed_version', lambda d: overrides[d] if d in overrides else real(d))


def test_installed_versions_pass():
    deps.check_dependencies()


def test_old_gsplat_is_refused_with_name_version_and_range(monkeypatch):
    fake_versions(monkeypatch, {'gsplat': '1.0.0'})
    with pytest.raises(ImportError) as info:
        deps.check_dependencies()
    msg = str(info.value)
    assert 'gsplat' in msg and '1.0.0' in msg and '1.5.3' in msg and '<2' in msg
    assert 'open_clip' not in msg  # only the offending package is reported


@pytest.mark.parametrize('version, ok', [('1.5.2', False), ('1.5.3', True), ('1.9.0', True), ('1.6.0.dev0', True),
                                         ('2.0.0rc1', False), ('2.0.0', False), ('not-a-version', False)])
def test_gsplat_range_edges(monkeypatch, version, ok):
    fake_versions(monkeypatch, {'gsplat': version})
    if ok:
        deps.check_dependencies()
    else:
        with pytest.raises(ImportError, match=f'gsplat {version}'):
            deps.check_dependencies()


def test_open_clip_2_is_refused(monkeypatch):
    fake_versions(monkeypatch, {'open_clip_torch': '2.32.0'})
    with pytest.raises(ImportError, match=r'open_clip_torch 2\.32\.0 .*open_clip_torch>=3\.0,<4'):
        deps.check_dependencies()


def test_scipy_is_checked(monkeypatch):
    """The SUN RGB-D converter reads .mat files with scipy: a missing or too-old scipy fails at import."""
    fake_versions(monkeypatch, {'scipy': '1.4.1'})
    with pytest.raises(ImportError, match=r'scipy 1\.4\.1 .*scipy>=1\.5'):
        deps.check_dependencies()
    fake_versions(monkeypatch, {'scipy': None})
    with pytest.raises(ImportError, match='scipy is not installed'):
        deps.check_dependencies()


@pytest.mark.parametrize('version, ok', [('0.59.1', False), ('0.60.0', True), ('0.62.1', True), ('1.0.0', False)])
def test_numba_range(monkeypatch, version, ok):
    """The fused rasteriser needs numba with NumPy 2 support (0.60) and the pre-1.0 compiler API."""
    fake_versions(monkeypatch, {'numba': version})
    if ok:
        deps.check_dependencies()
    else:
        with pytest.raises(ImportError, match=rf'numba {version} .*numba>=0\.60,<1'):
            deps.check_dependencies()


def test_missing_distribution_is_refused(monkeypatch):
    fake_versions(monkeypatch, {'gsplat': None})
    with pytest.raises(ImportError, match='gsplat is not installed'):
        deps.check_dependencies()


@pytest.mark.parametrize('mmcv, mmcv_lite, ok', [('2.1.0', None, True), (None, '2.1.0', True), (None, None, False),
                                                 ('2.3.0', None, False), (None, '1.7.2', False)])
def test_mmcv_from_either_distribution(monkeypatch, mmcv, mmcv_lite, ok):
    fake_versions(monkeypatch, {'mmcv': mmcv, 'mmcv-lite': mmcv_lite})
    if ok:
        deps.check_dependencies()
    else:
        with pytest.raises(ImportError, match='mmcv'):
            deps.check_dependencies()


def test_skip_env_var(monkeypatch):
    fake_versions(monkeypatch, {'gsplat': '1.0.0'})
    monkeypatch.setenv(deps.SKIP_ENV, '1')
    deps.check_dependencies()


def test_import_gsclip_mm_runs_the_check():
    """``import gsclip_mm`` itself refuses a too-old gsplat (fresh interpreter: the package imports once)."""
    code = ("import importlib.metadata as m; real = m.version; "
            "m.version = lambda d: '1.0.0' if d == 'gsplat' else real(d); import gsclip_mm")
    env = {k: v for k, v in os.environ.items() if k != deps.SKIP_ENV}
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert 'ImportError' in out.stderr and 'gsplat 1.0.0' in out.stderr and '>=1.5.3' in out.stderr


def test_check_imports_none_of_the_packages(monkeypatch):
    """The check reads metadata only: it must not import gsplat or open_clip (slow, lazily used)."""
    for name in ('gsplat', 'open_clip'):
        monkeypatch.delitem(sys.modules, name, raising=False)
    deps.check_dependencies()
    assert 'gsplat' not in sys.modules and 'open_clip' not in sys.modules


def _setup_cfg_requirements():
    """setup.cfg's install_requires and extras, as ``{distribution: SpecifierSet}``."""
    cfg = configparser.ConfigParser()
    cfg.read(osp.join(ROOT, 'setup.cfg'))
    lines = cfg['options']['install_requires'].split('\n')
    lines += cfg['options.extras_require']['full'].split('\n') + cfg['options.extras_require']['lite'].split('\n')
    reqs = [Requirement(line) for line in lines if line.strip()]
    return {r.name: r.specifier for r in reqs}


def test_setup_cfg_agrees_with_required_versions():
    declared = _setup_cfg_requirements()
    for requirement, spec in deps.REQUIRED_VERSIONS.items():
        for dist in deps.DISTRIBUTIONS.get(requirement, (requirement, )):
            assert declared.get(dist) == SpecifierSet(spec), f'setup.cfg: {dist}{declared.get(dist)} != {spec}'
    # and no range in setup.cfg that the import check does not know about
    checked = {d for r in deps.REQUIRED_VERSIONS for d in deps.DISTRIBUTIONS.get(r, (r, ))}
    assert {d for d, s in declared.items() if str(s)} <= checked


def test_requirements_pins_are_supported():
    """requirements.txt pins exact versions; each must fall in its supported range."""
    pins = {}
    for line in open(osp.join(ROOT, 'requirements.txt')):
        if line.strip() and not line.startswith('#'):
            req = Requirement(line.strip())
            (spec, ) = req.specifier
            assert spec.operator == '==', f'requirements.txt: {line.strip()} is not an exact pin'
            pins[req.name] = Version(spec.version)
    for requirement, spec in deps.REQUIRED_VERSIONS.items():
        pinned = [pins[d] for d in deps.DISTRIBUTIONS.get(requirement, (requirement, )) if d in pins]
        assert pinned, f'requirements.txt pins no distribution of {requirement}'
        assert all(v in SpecifierSet(spec) for v in pinned), f'requirements.txt: {requirement} {pinned} not {spec}'
