"""Check, when ``gsclip_mm`` is imported, that its dependencies are versions it works with.

gsplat is imported lazily (projection, rasterising, the PLY exporter), so a
gsplat without the batched private functions we call would otherwise fail in
the middle of a run. The check reads the installed versions from the package
metadata (``importlib.metadata``) and imports none of the packages, so it
costs milliseconds.

:data:`REQUIRED_VERSIONS` is the one list of supported ranges; ``setup.cfg``
cannot import it, so it repeats the ranges and
``tests/test_utils/test_deps.py`` checks that both agree.
"""
import os
from importlib import metadata
from typing import Dict, Optional, Tuple

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

#: Distribution -> supported versions (PEP 440 specifiers).
REQUIRED_VERSIONS: Dict[str, str] = {
    'torch': '>=2.0',
    'mmengine': '>=0.10.0,<1.0',
    'mmcv': '>=2.0.0,<2.3.0',  # mmcv or mmcv-lite, see DISTRIBUTIONS
    # create_model(pretrained_text=...) exists from 3.0.0 (2.x forwards it to the model and fails).
    'open_clip_torch': '>=3.0,<4',
    # Private gsplat.cuda._torch_impl functions with batch dimensions ([..., N, 3] means,
    # [..., C, 4, 4] viewmats, [..., N, 2] radii) exist from 1.5.3; private, so below the next major.
    'gsplat': '>=1.5.3,<2',
    # The fused CPU rasteriser's kernels (numba.prange, cache=True, error_model, numba.extending.overload);
    # 0.60 is the first release for NumPy 2. Below 1.0, which may change the compiler's API.
    'numba': '>=0.60,<1',
    # scipy.io.loadmat(path, variable_names=[...]) reads SUN RGB-D's MATLAB v5 depth files (the SUN RGB-D
    # converter); the call is older than 1.5, the first release with Python 3.9 wheels (python_requires).
    'scipy': '>=1.5',
    'trimesh': '>=3.20',
}

#: Requirement -> the distributions that provide it; each installed one is checked, one must be.
DISTRIBUTIONS: Dict[str, Tuple[str, ...]] = {'mmcv': ('mmcv', 'mmcv-lite')}

#: Set to 1 to skip the check (e.g. to try a newer release); the code may then fail mid-run.
SKIP_ENV = 'GSCLIP_MM_SKIP_DEPENDENCY_CHECK'


def _installed_version(distribution: str) -> Optional[str]:
    """The installed version of ``distribution``, or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _problem(requirement: str, spec: str) -> Optional[str]:
    """Why the installed ``requirement`` does not satisfy ``spec``, or None when it does."""
    found = {d: _installed_version(d) for d in DISTRIBUTIONS.get(requirement, (requirement,))}
    installed = {d: v for d, v in found.items() if v is not None}
    if not installed:
        return f"{' or '.join(found)} is not installed (required: {spec})"
    for dist, version in installed.items():
        try:
            # Pre-releases (e.g. 1.6.0.dev0) count as their release: a dev build of a
            # supported version is fine, and `<2` still excludes 2.0.0rc1 (PEP 440).
            ok = SpecifierSet(spec).contains(Version(version), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            return f'{dist} {version} is installed, but gsclip_mm requires {dist}{spec}'
    return None


def check_dependencies() -> None:
    """Raise ImportError if an installed dependency is outside :data:`REQUIRED_VERSIONS`.

    The message names each offending package, its installed version and the
    required range. Skipped when the environment variable ``SKIP_ENV`` is 1.
    """
    if os.environ.get(SKIP_ENV) == '1':
        return
    problems = [p for p in (_problem(r, s) for r, s in REQUIRED_VERSIONS.items()) if p]
    if problems:
        raise ImportError('gsclip_mm: unsupported dependency versions:\n  ' + '\n  '.join(problems) +
                          f"\nInstall supported versions (pip install -e . or -r requirements.txt), or set "
                          f'{SKIP_ENV}=1 to skip this check at your own risk.')
