"""The fitting service: one place that turns an object (or its scene) into cached, fitted Gaussians.

:class:`GaussianFitter` owns the cache keys, load-or-fit, the scene cut, the
save, the check that a fit kept some Gaussians, and the failure record
(``fit_failures.json``). Three callers share it:

* the ``FitGaussians`` transform fits (or reads) one object at a time
  (:meth:`GaussianFitter.load_or_fit`);
* ``tools/fit_gaussians.py`` fits a dataset ahead, in fixed chunks
  (:meth:`GaussianFitter.fit_object_chunk`, :meth:`GaussianFitter.fit_scene_chunk`),
  and records what failed (:meth:`GaussianFitter.record_failures`);
* the dataset reads the failure record to skip those objects
  (:meth:`GaussianFitter.failure_of`).

An object is described by a mapping ``info``: a dataset info (nothing loaded:
the content hashes ``img_sha256``, ``points_sha256``, ``scene_points_sha256``
key it) or pipeline results (``img``, ``points`` loaded). The service reads a
scene's points through the ``scene_points`` callable it is given (the points
format belongs to the datasets, above this layer).

Chunks are fixed and fitted whole: a fit depends at round-off level on its
batch (see :mod:`gsclip_mm.gaussians.fitting`), so a chunk with any missing
fit is refitted with all its fittable members and only the missing ones are
written; a resumed or resharded run writes exactly what an uninterrupted one
would.
"""
import copy
import hashlib
import math
import time
from collections import Counter
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .cache import GaussianCache, cache_key, cut_cache_key, file_sha256, points_sha256, scene_cache_key
from .camera import FitInputError
from .fitting import FitInput, FitResult, FitSettings, cut_object, fit_batch, prepare_fit_input, prepare_scene_fit_input

#: The pipeline steps before fitting: info -> results with ``img`` (and ``points``), or None (dropped).
Loader = Callable[[dict], Optional[dict]]


def _reason(e: Exception) -> str:
    return f'{type(e).__name__}: {e}'


class FitStats:
    """What one rank's chunks did; merged over ranks into the tool's summary (:meth:`summary`)."""

    def __init__(self):
        self.total = self.fitted = self.cached = 0
        self.failures = []  # (object, reason, key or None)
        self.psnr = []  # (object, psnr) of objects fitted now or found in the cache
        self.fitted_keys = []  # keys fitted now (they leave the failure record)
        self.fit_seconds = 0.0
        self.scenes = []  # scene mode: (scene, psnr, Gaussians kept, pruned, points dropped by reason) fitted now

    def to_dict(self) -> dict:
        return dict(total=self.total, fitted=self.fitted, cached=self.cached, failures=self.failures,
                    psnr=self.psnr, fitted_keys=self.fitted_keys, fit_seconds=self.fit_seconds, scenes=self.scenes)

    @classmethod
    def merge(cls, dicts: Iterable[dict]) -> 'FitStats':
        """The stats of several ranks (their :meth:`to_dict`, tuples lost in transit restored)."""
        out = cls()
        for s in dicts:
            out.total += s['total']
            out.fitted += s['fitted']
            out.cached += s['cached']
            out.failures += [tuple(f) for f in s['failures']]
            out.psnr += [tuple(p) for p in s['psnr']]
            out.fitted_keys += s['fitted_keys']
            out.fit_seconds += s['fit_seconds']
            out.scenes += [tuple(x) for x in s.get('scenes', [])]
        return out

    def failed_record(self) -> Dict[str, dict]:
        """The failures with a key, as failure-record entries: key -> dict(object, reason)."""
        return {k: dict(object=o, reason=r) for o, r, k in self.failures if k is not None}

    def summary(self, seconds: float) -> dict:
        """The run's summary (what ``fit_summary.json`` holds), ``seconds`` its wall time."""
        values = [p for _, p in self.psnr if not math.isnan(p)]
        out = dict(objects=self.total, fitted=self.fitted, cached_before=self.cached, failed=len(self.failures),
                   failures=[dict(object=o, reason=r) for o, r, _ in self.failures],
                   failure_reasons=dict(Counter(r.split(':')[0] for _, r, _ in self.failures)),
                   psnr_mean=sum(values) / len(values) if values else None, psnr_min=min(values) if values else None,
                   seconds=seconds, objects_per_second=self.fitted / seconds if seconds > 0 else None,
                   per_object_psnr={o: p for o, p in self.psnr})
        if self.scenes:  # scene mode: what fitting kept and removed, per scene fitted now
            dropped = Counter()
            for *_, counts in self.scenes:
                dropped.update(counts)
            out.update(scenes_fitted=len(self.scenes), gaussians_kept=sum(x[2] for x in self.scenes),
                       gaussians_pruned=sum(x[3] for x in self.scenes), points_dropped=dict(dropped),
                       per_scene={sc: dict(psnr=p, gaussians=n, pruned=pr, points_dropped=c)
                                  for sc, p, n, pr, c in self.scenes})
        return out


class GaussianFitter:
    """Fitted Gaussians of objects, cached (see the module docstring).

    Args:
        settings (FitSettings | dict, optional): the fitting settings.
        cache_dir (str, optional): cache folder; None fits every time (and has no failure record).
        cache_only (bool): raise instead of fitting when the cache misses.
        device (str): torch device of the fits.
        backend (str): rasteriser (see :func:`gsclip_mm.gaussians.rasterize`).
        scene_points (callable, optional): info -> all points ``[N, F]`` of the object's scene (scene mode).
    """

    def __init__(self, settings=None, cache_dir: Optional[str] = None, cache_only: bool = False,
                 device: str = 'cpu', backend: str = 'auto',
                 scene_points: Optional[Callable[[Mapping], np.ndarray]] = None) -> None:
        self.settings = FitSettings.build(settings)
        self.cache = GaussianCache(cache_dir) if cache_dir else None
        if cache_only and self.cache is None:
            raise ValueError('cache_only=True needs a cache_dir')
        self.cache_only = cache_only
        self.device = device
        self.backend = backend
        self._scene_points = scene_points

    # ------------------------------------------------------------------ keys
    @staticmethod
    def object_name(info: Mapping) -> str:
        """A readable name of the object for errors and logs."""
        return f'{info.get("img_path", "?")}#{info.get("instance_idx", "?")}'

    @staticmethod
    def image_sha256(info: Mapping) -> str:
        """The image's content hash: ``img_sha256``, else of the file at ``img_path``, else of the pixels."""
        img_sha = info.get('img_sha256')
        if img_sha is None:
            if info.get('img_path'):
                img_sha = file_sha256(info['img_path'])
            else:  # arrays only: the decoded pixels stand in for the file
                img = np.ascontiguousarray(info['img'])
                img_sha = 'pixels:' + hashlib.sha256(str(img.shape).encode() + img.tobytes()).hexdigest()
        return img_sha

    def key(self, info: Mapping) -> str:
        """The cache key of an object: works on a dataset info (no data loaded) as on pipeline results."""
        img_sha = self.image_sha256(info)
        if self.settings.mode == 'scene':
            return cut_cache_key(self.scene_key(info, img_sha), info['bbox_3d'])
        pts_sha = info.get('points_sha256') or points_sha256(np.asarray(info['points'])[:, :6])
        return cache_key(img_sha, pts_sha, info['depth2img'], info['bbox'], self.settings.key_dict())

    def scene_key(self, info: Mapping, img_sha256: Optional[str] = None) -> str:
        """The cache key of the object's whole-scene fit (scene mode)."""
        img_sha256 = img_sha256 or self.image_sha256(info)
        pts_sha = info.get('scene_points_sha256') or points_sha256(self.scene_points(info)[:, :6])
        return scene_cache_key(img_sha256, pts_sha, info['depth2img'], self.settings.key_dict())

    def scene_points(self, info: Mapping) -> np.ndarray:
        """All points ``[N, F]`` of the object's scene, through the ``scene_points`` callable."""
        if self._scene_points is None:
            raise ValueError('scene mode needs the scene_points callable (info -> the scene points [N, F])')
        return self._scene_points(info)

    # ------------------------------------------------------------------ the failure record
    def failures(self) -> Dict[str, dict]:
        """The cache's failure record (key -> dict(object, reason)); {} without a cache or a record."""
        return self.cache.failures() if self.cache is not None else {}

    def failure_of(self, info: Mapping, record: Optional[Dict[str, dict]] = None) -> Optional[dict]:
        """The recorded failure of the object (``record``: :meth:`failures`, read once by the caller), or None."""
        record = self.failures() if record is None else record
        return record.get(self.key(info)) if record else None

    def record_failures(self, failed: Dict[str, dict], fitted: Iterable[str]) -> Dict[str, dict]:
        """Add ``failed`` to the record and drop the keys now ``fitted`` (see :meth:`GaussianCache.update_failures`)."""
        return self.cache.update_failures(failed, fitted)

    # ------------------------------------------------------------------ one object (the transform)
    def load(self, key: Optional[str]) -> Optional[Tuple[np.ndarray, float]]:
        """(Gaussians [N, 14], PSNR) cached under ``key``, or None (no cache, missing or corrupt)."""
        hit = self.cache.load(key) if key is not None and self.cache is not None else None
        return None if hit is None else (hit[0], float(hit[1].get('psnr', float('nan'))))

    def save(self, key: Optional[str], gaussians: np.ndarray, **meta) -> None:
        """Cache the Gaussians [N, 14] under ``key`` with ``meta`` in the PLY header (no cache: nothing)."""
        if self.cache is not None:
            self.cache.save(key, gaussians, meta)

    def _miss(self, name: str, key: str, what: str) -> FileNotFoundError:
        return FileNotFoundError(f'{name}: no cached {what} at {self.cache.path(key)}; run '
                                 f'tools/fit_gaussians.py with the same settings first')

    def check(self, res: FitResult, name: str) -> FitResult:
        """``res``, unless pruning removed every Gaussian (:class:`FitInputError` naming ``name``)."""
        if len(res.gaussians) == 0:
            raise FitInputError(f'{name}: every Gaussian was pruned (opacity under {self.settings.prune_opacity})')
        return res

    def fit_one(self, inp: FitInput) -> FitResult:
        """Fit one input alone; a diverged or fully pruned fit is a :class:`FitInputError` (skip the object)."""
        try:
            res = fit_batch([inp], self.settings, self.device, self.backend, return_images=False)[0]
        except FloatingPointError as e:
            raise FitInputError(str(e)) from e
        return self.check(res, inp.name)

    def load_or_fit(self, results: Mapping) -> Tuple[np.ndarray, float]:
        """(Gaussians [N', 14], PSNR) of the object: cached, or cut from its scene fit, or fitted now (and cached)."""
        name = self.object_name(results)
        key = self.key(results) if self.cache is not None else None
        hit = self.load(key)
        if hit is not None:
            return hit
        if self.settings.mode == 'scene':  # cut from the scene's fit (cache_only: that fit must be cached)
            scene, psnr = self.load_or_fit_scene(results, name)
            gaussians = cut_object(scene, results['bbox_3d'], name)  # FitInputError when none is inside
            self.save(key, gaussians, psnr=psnr, name=name)
            return gaussians, psnr
        if self.cache_only:
            raise self._miss(name, key, 'Gaussians')
        inp = prepare_fit_input(results['points'], results['img'], results['depth2img'], results['bbox'],
                                self.settings, name)  # FitInputError (an ObjectError) on bad input
        res = self.fit_one(inp)
        self.save(key, res.gaussians, psnr=res.psnr, ssim=res.ssim, name=name)
        return res.gaussians, res.psnr

    def load_or_fit_scene(self, results: Mapping, name: str) -> Tuple[np.ndarray, float]:
        """(Gaussians [N, 14], PSNR) of the object's scene fit: cached, or fitted (and cached) now."""
        key = self.scene_key(results) if self.cache is not None else None
        hit = self.load(key)
        if hit is not None:
            return hit
        if self.cache_only:
            raise self._miss(name, key, 'scene fit')
        inp = prepare_scene_fit_input(self.scene_points(results), results['img'], results['depth2img'],
                                      self.settings, results.get('lidar_path', name))
        res = self.fit_one(inp)
        self.save(key, res.gaussians, psnr=res.psnr, ssim=res.ssim, name=results.get('lidar_path'), pruned=res.pruned)
        return res.gaussians, res.psnr

    # ------------------------------------------------------------------ chunks (the offline tool)
    def fit_object_chunk(self, infos: Sequence[dict], load: Loader, stats: FitStats, done_keys: set) -> None:
        """Fit one fixed chunk of objects (object mode) and save the missing ones (module docstring).

        ``done_keys``: keys handled earlier in this run (another split naming the same object), updated.
        """
        members = [(self.object_name(info), self.key(info), info) for info in infos]
        missing = {key for _, key, _ in members if key not in done_keys and not self.cache.exists(key)}
        todo = []  # (name, key, FitInput, save)
        for name, key, info in members:
            stats.total += 1
            save = key in missing
            if not save:
                hit = self.cache.load(key) if key not in done_keys else None
                if hit is not None or key in done_keys:
                    stats.cached += 1
                    if hit is not None:
                        stats.psnr.append((name, float(hit[1].get('psnr', math.nan))))
                else:  # a corrupt file (reported by load): refit it
                    save = True
            try:
                results = load(copy.deepcopy(info))
                if results is None:
                    raise ValueError('a pipeline step dropped the object')
                inp = prepare_fit_input(results['points'], results['img'], results['depth2img'], results['bbox'],
                                        self.settings, name)
            except Exception as e:  # noqa: BLE001  counted, reported skip
                if save:
                    stats.failures.append((name, _reason(e), key))
                continue
            todo.append((name, key, inp, save))
        if any(t[3] for t in todo):
            self._fit_and_save(todo, stats)
        done_keys.update(key for _, key, _ in members)

    def _fit_and_save(self, todo: List[tuple], stats: FitStats) -> None:
        """Fit ``todo`` = [(name, key, FitInput, save)] in one batch; save those marked (the others ride along).

        A batch that fails (one object's fit diverged) is refitted one object at a time, so only that object
        is lost.
        """
        t0 = time.perf_counter()
        try:
            results = fit_batch([t[2] for t in todo], self.settings, self.device, self.backend, return_images=False)
        except Exception as e:  # noqa: BLE001  counted, reported failure of this object
            if len(todo) == 1:
                name, key, _, save = todo[0]
                if save:
                    stats.failures.append((name, _reason(e), key))
                return
            for t in todo:
                self._fit_and_save([t], stats)
            return
        stats.fit_seconds += time.perf_counter() - t0
        for (name, key, _, save), res in zip(todo, results):
            if not save:
                continue
            try:
                self.check(res, name)
            except FitInputError as e:
                stats.failures.append((name, _reason(e), key))
                continue
            self.cache.save(key, res.gaussians, dict(psnr=res.psnr, ssim=res.ssim, name=name))
            stats.fitted += 1
            stats.fitted_keys.append(key)
            stats.psnr.append((name, res.psnr))

    def fit_scene_chunk(self, groups: Sequence[Sequence[dict]], load: Loader, stats: FitStats,
                        done_keys: set) -> None:
        """Fit one fixed chunk of scenes (each the infos of its objects), then cut and save their objects.

        As in object mode, every fittable scene of the chunk is in the optimisation whenever one of them needs
        fitting, and only missing fits are written.
        """
        scenes = []  # dict(infos, names, keys, scene_key, todo)
        for infos in groups:
            keys = [self.key(info) for info in infos]
            todo = [k not in done_keys and not self.cache.exists(k) for k in keys]
            stats.total += len(infos)
            stats.cached += len(infos) - sum(todo)
            scenes.append(dict(infos=infos, names=[self.object_name(i) for i in infos], keys=keys, todo=todo,
                               scene_key=self.scene_key(infos[0])))
        need = [i for i, sc in enumerate(scenes) if any(sc['todo'])]
        fits = {i: hit for i in need for hit in [self.load(scenes[i]['scene_key'])] if hit is not None}
        if any(i not in fits for i in need):  # cached scene fits stay what the cuts are taken from
            fits.update({i: v for i, v in self._fit_scenes(scenes, fits, load, stats).items() if i not in fits})
        for i in need:
            self._cut_scene(scenes[i], fits.get(i, 'the scene was not fitted'), stats)
        for sc in scenes:
            done_keys.update(sc['keys'])

    def _cut_scene(self, scene: dict, fit, stats: FitStats) -> None:
        """Cut and save the scene's missing objects from ``fit`` = (Gaussians [N, 14], psnr) or a failure reason."""
        for name, key, info, todo in zip(scene['names'], scene['keys'], scene['infos'], scene['todo']):
            if not todo:
                continue
            if not isinstance(fit, tuple):
                stats.failures.append((name, fit, key))
                continue
            try:
                cut = cut_object(fit[0], info['bbox_3d'], name)
            except Exception as e:  # noqa: BLE001  counted, reported skip
                stats.failures.append((name, _reason(e), key))
                continue
            self.cache.save(key, cut, dict(psnr=fit[1], name=name))
            stats.fitted += 1
            stats.fitted_keys.append(key)
            stats.psnr.append((name, fit[1]))

    def _load_scene(self, infos: Sequence[dict], load: Loader) -> FitInput:
        """The scene's FitInput: its image from ``load`` (run on its first object it accepts), all its points."""
        err = None
        for info in infos:
            try:
                results = load(copy.deepcopy(info))
                if results is not None:
                    break
            except Exception as e:  # noqa: BLE001  another object of the scene may load
                err = e
        else:
            raise ValueError(f'no object of the scene loads: {_reason(err)}')
        return prepare_scene_fit_input(self.scene_points(infos[0]), results['img'], infos[0]['depth2img'],
                                       self.settings, infos[0]['lidar_path'])

    def _fit_scenes(self, scenes: List[dict], fits: dict, load: Loader, stats: FitStats) -> dict:
        """Fit every loadable scene of the chunk (one batch per image size), save the missing scene fits.

        Returns scene index -> (Gaussians, psnr), or -> the failure reason (str) for the scenes that failed.
        """
        out, inputs = {}, {}
        for i, sc in enumerate(scenes):
            try:
                inputs[i] = self._load_scene(sc['infos'], load)
            except Exception as e:  # noqa: BLE001  every object of the scene fails with this reason
                out[i] = _reason(e)
        by_shape = {}
        for i, inp in inputs.items():
            by_shape.setdefault(inp.target.shape, []).append(i)
        for group in by_shape.values():
            t0 = time.perf_counter()
            try:
                results = fit_batch([inputs[i] for i in group], self.settings, self.device, self.backend,
                                    return_images=False)
            except Exception as e:  # noqa: BLE001  a diverged fit: refit the group's scenes one at a time
                if len(group) == 1:
                    out[group[0]] = _reason(e)
                    continue
                for i in group:
                    out[i] = self._refit_scene(i, inputs[i], scenes[i], fits, stats)
                continue
            stats.fit_seconds += time.perf_counter() - t0
            for i, res in zip(group, results):
                out[i] = self._keep_scene(i, inputs[i], res, scenes[i], fits, stats)
        return out

    def _refit_scene(self, i: int, inp: FitInput, scene: dict, fits: dict, stats: FitStats):
        """One scene alone (after its batch failed): (Gaussians, psnr) or the failure reason."""
        try:
            res = fit_batch([inp], self.settings, self.device, self.backend, return_images=False)[0]
        except Exception as e:  # noqa: BLE001  counted, reported failure of this scene's objects
            return _reason(e)
        return self._keep_scene(i, inp, res, scene, fits, stats)

    def _keep_scene(self, i: int, inp: FitInput, res: FitResult, scene: dict, fits: dict, stats: FitStats):
        """Record a fitted scene (saved when it was missing); its (Gaussians, psnr) or a failure reason."""
        try:
            self.check(res, inp.name)
        except FitInputError as e:
            return _reason(e)
        if any(scene['todo']) and i not in fits:
            self.cache.save(scene['scene_key'], res.gaussians, dict(psnr=res.psnr, ssim=res.ssim, name=inp.name,
                                                                    pruned=res.pruned))
            stats.scenes.append((inp.name, res.psnr, len(res.gaussians), res.pruned, res.counts))
        return res.gaussians, res.psnr
