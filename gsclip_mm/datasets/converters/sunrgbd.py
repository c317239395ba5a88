"""SUN RGB-D's extraction layout -> mmdetection3d's v2 infos, every object labelled in the 37 classes.

Needs neither mmdetection3d nor MATLAB at this step: it reads what
mmdetection3d's and VoteNet's users already have after the MATLAB extraction
(``extract_rgbd_data_v2.m``)::

    root/sunrgbd_trainval/
        depth/NNNNNN.mat      # MATLAB v5, variable 'instance': [N, 6] x y z r g b, upright depth frame
        image/NNNNNN.jpg
        calib/NNNNNN.txt      # line 1: Rtilt, line 2: K (9 numbers each, column-major)
        label/NNNNNN.txt      # name x y w h cx cy cz hw hl hh ox oy, one object a line
        {train,val}_data_idx.txt   # optional: mmdetection3d's scene split

and writes, under ``out_dir``, the layout ``SUNRGBDObjectDataset`` reads::

    points/NNNNNN.bin                     # float32 [M, 6]
    sunrgbd_trainval/image/NNNNNN.jpg     # a symlink to the input image (or a copy)
    sunrgbd_infos_trainval.pkl            # every converted scene
    sunrgbd_infos_{train,val}.pkl         # only when the split index files exist
    sunrgbd_converter_report.json
    conversion_records/NNNNNN.pkl         # one per finished scene: a rerun reuses it

Conventions are mmdetection3d's (``tools/dataset_converters/sunrgbd_data_utils.py``
and ``update_infos_to_v2.py``), so the boxes and cameras equal its infos:
``bbox = [x, y, x + w, y + h]``; ``bbox_3d = [cx, cy, cz, 2 hl, 2 hw, 2 hh,
atan2(oy, ox)]``; ``depth2img = K @ [[1, 0, 0], [0, 0, -1], [0, 1, 0]] @ Rtilt^T``
with K and Rtilt read as float32. Ours: every object is kept, labelled by
:class:`~.sunrgbd37.SUNRGBD37Mapping` (-1 when its name has no class); the
points are a seeded subsample (mmdetection3d's is unseeded), and a scene with
fewer points than asked keeps all of them (mmdetection3d draws with
replacement there, which only repeats points).
"""
import hashlib
import json
import math
import os
import os.path as osp
import pickle
import re
from collections import Counter
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.io
from mmengine.utils import track_parallel_progress, track_progress
from PIL import Image

from gsclip_mm.structures.categories import SUNRGBD37_CLASSES, SUNRGBD_CLASSES
from gsclip_mm.utils.io import atomic_write
from gsclip_mm.utils.safe_pickle import restricted_loads
from .sunrgbd37 import DEFAULT_MAPPING_FILE, SUNRGBD37Mapping

#: Bumped whenever the output for the same input changes: older per-scene records are then redone.
FORMAT_VERSION = 1
#: mmdetection3d's create_data.py default.
DEFAULT_NUM_POINTS = 50000
INPUT_DIR = 'sunrgbd_trainval'
POINTS_DIR = 'points'
IMAGE_DIR = osp.join(INPUT_DIR, 'image')
RECORDS_DIR = 'conversion_records'
REPORT_FILE = 'sunrgbd_converter_report.json'
LABEL_FIELDS = 'name x y w h cx cy cz hw hl hh ox oy'

# Depth frame (x right, y forward, z up) -> camera frame (x right, y down, z forward): mmdetection3d's
# Coord3DMode.convert_point as written out in update_sunrgbd_infos.
_DEPTH_TO_CAM = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])


class SceneSkip(Exception):
    """This scene cannot be converted (a missing or unreadable input file); the message names the file."""


class LabelLineError(ValueError):
    """This label line cannot be read as an object."""


# ----------------------------------------------------------------------------- parsing

def parse_calib(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(K, Rtilt)``, each float32 ``[3, 3]``, from a calib file (9 numbers a line, column-major).

    Raises SceneSkip naming the file and line when a line is missing, short or not numeric.
    """
    with open(path, 'r', encoding='utf-8', errors='replace') as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip()]
    mats = []
    for i, what in enumerate(('Rtilt', 'K')):
        if i >= len(lines):
            raise SceneSkip(f'{path}: no line {i + 1} ({what})')
        try:
            vals = [float(x) for x in lines[i].split()]
        except ValueError as e:
            raise SceneSkip(f'{path}:{i + 1}: {what} is not numeric ({e})') from None
        if len(vals) != 9 or not all(map(math.isfinite, vals)):
            raise SceneSkip(f'{path}:{i + 1}: {what} needs 9 finite numbers, got {lines[i].strip()!r}')
        # float32 as mmdetection3d's get_calibration, so depth2img equals its infos to the bit.
        mats.append(np.reshape(vals, (3, 3), order='F').astype(np.float32))
    rtilt, k = mats
    return k, rtilt


def depth2img_matrix(k: np.ndarray, rtilt: np.ndarray) -> np.ndarray:
    """``[3, 3]`` float64 ``K @ flip @ Rtilt^T``: depth point -> homogeneous pixel ``(u w, v w, w)``.

    ``u, v`` are SUN RGB-D's 1-based pixel coordinates (``data/sunrgbd_raw_sample/README.md``).
    """
    assert k.shape == (3, 3) and rtilt.shape == (3, 3), f'K {k.shape} and Rtilt {rtilt.shape} must be [3, 3]'
    return k @ (_DEPTH_TO_CAM @ rtilt.transpose(1, 0))


def parse_label_line(line: str) -> Tuple[str, List[float], List[float]]:
    """``(name, bbox [4], bbox_3d [7])`` of one label line, in mmdetection3d's conventions.

    The last 12 fields are the numbers, the fields before them the name (so a
    name with a space still parses). Raises LabelLineError with the reason.
    """
    fields = line.split()
    if len(fields) < 13:
        raise LabelLineError(f'{len(fields)} fields, expected 13 ({LABEL_FIELDS})')
    name = ' '.join(fields[:-12])
    try:
        vals = [float(v) for v in fields[-12:]]
    except ValueError as e:
        raise LabelLineError(f'not a number ({e})') from None
    if not all(map(math.isfinite, vals)):
        raise LabelLineError(f'non-finite box value in {fields[-12:]}')
    x, y, w, h, cx, cy, cz, hw, hl, hh, ox, oy = vals
    bbox = [x, y, x + w, y + h]
    # hl is the half size along x and hw along y in the depth frame (mmdetection3d's SUNRGBDInstance).
    bbox_3d = [cx, cy, cz, hl * 2, hw * 2, hh * 2, float(np.arctan2(oy, ox))]
    return name, bbox, bbox_3d


def parse_label_file(path: str) -> Tuple[List[tuple], List[Tuple[int, str]]]:
    """Objects ``[(line_no, name, bbox, bbox_3d)]`` and bad lines ``[(line_no, reason)]`` (1-based lines).

    Blank lines are neither.
    """
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError:  # some raw names carry latin-1 characters
        text = raw.decode('latin-1')
    objects, bad = [], []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            objects.append((no, *parse_label_line(line)))
        except LabelLineError as e:
            bad.append((no, str(e)))
    return objects, bad


def load_depth_points(path: str) -> np.ndarray:
    """The ``instance`` variable of a depth ``.mat``: float32 ``[N, 6]`` (x y z r g b, rgb in [0, 1]).

    Raises SceneSkip naming the file when it does not read, has no
    ``instance`` or holds another shape.
    """
    try:
        mat = scipy.io.loadmat(path, variable_names=['instance'])
    except Exception as e:  # noqa: BLE001 - any loadmat failure means this file cannot be read
        raise SceneSkip(f'{path}: not a readable MATLAB file ({type(e).__name__}: {e})') from None
    if 'instance' not in mat:
        names = sorted(name for name, _, _ in scipy.io.whosmat(path))
        raise SceneSkip(f'{path}: no variable \'instance\' (it holds {names})')
    pts = mat['instance']
    if pts.ndim != 2 or pts.shape[1] != 6 or len(pts) == 0 or not np.issubdtype(pts.dtype, np.number):
        raise SceneSkip(f'{path}: \'instance\' must be a non-empty numeric [N, 6] array, got {pts.dtype} '
                        f'{pts.shape}')
    return np.ascontiguousarray(pts, dtype=np.float32)


def subsample_points(points: np.ndarray, num_points: int, seed: int, sample_idx: int) -> np.ndarray:
    """``[min(N, num_points), C]`` rows drawn without replacement, kept in file order; all for ``num_points <= 0``.

    Seeded by ``(seed, sample_idx)``, so a scene's points do not depend on
    the worker count or on which scenes ran before.
    """
    n = len(points)
    if num_points <= 0 or n <= num_points:
        return points
    keep = np.random.default_rng([seed, sample_idx]).choice(n, num_points, replace=False)
    return points[np.sort(keep)]


def read_image_size(path: str) -> Tuple[int, int]:
    """``(height, width)`` from the image header; SceneSkip naming the file when it is not an image."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Exception as e:  # noqa: BLE001 - PIL raises several types for a bad file
        raise SceneSkip(f'{path}: not a readable image ({type(e).__name__}: {e})') from None
    return height, width


def read_split_file(path: str) -> List[int]:
    """Scene indices of an mmdetection3d ``*_data_idx.txt`` (one integer a line)."""
    ids = []
    with open(path, 'r', encoding='utf-8') as f:
        for no, line in enumerate(f, 1):
            if line.strip():
                if not line.strip().isdigit():
                    raise ValueError(f'{path}:{no}: expected a scene index, got {line.strip()!r}')
                ids.append(int(line))
    return ids


# ----------------------------------------------------------------------------- one scene

@lru_cache(maxsize=4)
def _mapping(path: str) -> SUNRGBD37Mapping:
    return SUNRGBD37Mapping(path)


def scene_paths(root: str, idx: int) -> Dict[str, str]:
    """The four input files of scene ``idx``."""
    name = f'{idx:06d}'
    base = osp.join(root, INPUT_DIR)
    return dict(label=osp.join(base, 'label', name + '.txt'), calib=osp.join(base, 'calib', name + '.txt'),
                depth=osp.join(base, 'depth', name + '.mat'), image=osp.join(base, 'image', name + '.jpg'))


def _record_key(task: dict, paths: Dict[str, str]) -> str:
    """What a scene's output depends on: settings, mapping, and each input file's path, size and mtime."""
    stats = {}
    for kind, path in paths.items():
        try:
            st = os.stat(path)
            stats[kind] = [osp.abspath(path), st.st_size, st.st_mtime_ns]
        except OSError:
            stats[kind] = None
    keyed = dict(format=FORMAT_VERSION, num_points=task['num_points'], seed=task['seed'],
                 copy_images=task['copy_images'], mapping=_mapping(task['mapping_file']).sha256, inputs=stats)
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()


def _outputs(out_dir: str, idx: int) -> Dict[str, str]:
    name = f'{idx:06d}'
    return dict(points=osp.join(out_dir, POINTS_DIR, name + '.bin'), image=osp.join(out_dir, IMAGE_DIR, name + '.jpg'),
                record=osp.join(out_dir, RECORDS_DIR, name + '.pkl'))


def _load_record(path: str, key: str, outputs: Dict[str, str]) -> Optional[dict]:
    """The finished scene's result when its record matches ``key`` and its outputs are whole; else None."""
    try:
        with open(path, 'rb') as f:
            record = restricted_loads(f.read())
        if record['key'] != key:
            return None
        result = record['result']
        points_ok = os.path.getsize(outputs['points']) == result['num_points'] * 6 * 4
    except Exception:  # noqa: BLE001 - no record, an unreadable one or no points: redo the scene
        return None
    return result if points_ok and osp.exists(outputs['image']) else None


def _place_image(src: str, dst: str, copy: bool) -> None:
    """Put the scene's image at ``dst``: a symlink to ``src`` (or a copy), replaced atomically."""
    if osp.exists(dst) and osp.samefile(src, dst) and not (copy and osp.islink(dst)):
        return  # already there (out_dir == root, or a previous link / copy)
    if copy:
        with open(src, 'rb') as f:
            atomic_write(dst, f.read())
        return
    os.makedirs(osp.dirname(dst), exist_ok=True)
    tmp = f'{dst}.{os.getpid()}.tmp'
    if osp.lexists(tmp):
        os.remove(tmp)
    os.symlink(osp.abspath(src), tmp)
    os.replace(tmp, dst)


def _instances(objects: Sequence[tuple], mapping: SUNRGBD37Mapping, label_path: str,
               unlabelled: list) -> List[dict]:
    """mmdetection3d v2 instances of the parsed objects, labelled in the 37 classes."""
    instances = []
    for line_no, name, bbox, bbox_3d in objects:
        hit = mapping.match(name)
        if hit.label < 0:
            unlabelled.append([label_path, line_no, name, hit.rule])
        instances.append(dict(
            bbox=bbox, bbox_label=hit.label, bbox_3d=bbox_3d, bbox_label_3d=hit.label,
            # Ours: the raw name and its label line, and mmdetection3d's own 10-class label (exact raw
            # name, else -1: the objects its conversion keeps).
            raw_name=name, label_line=line_no,
            bbox_label_3d_mmdet3d=SUNRGBD_CLASSES.index(name) if name in SUNRGBD_CLASSES else -1))
    return instances


def convert_scene(task: dict) -> dict:
    """Convert (or reuse) one scene; the worker entry of :func:`convert`.

    Returns a plain dict: ``sample_idx``, ``status`` ('converted', 'reused',
    'skipped'), ``skip_reason``, ``info`` (the scene's v2 info, None when
    skipped), ``num_points``, ``num_nonfinite`` (point rows dropped),
    ``skipped_lines`` (``[file, line, reason]``) and ``unlabelled``
    (``[file, line, raw name, rule]``).
    """
    idx, root, out_dir = task['sample_idx'], task['root'], task['out_dir']
    paths, outputs = scene_paths(root, idx), _outputs(out_dir, idx)
    key = _record_key(task, paths)
    reused = _load_record(outputs['record'], key, outputs)
    if reused is not None:
        return dict(reused, status='reused')
    result = dict(sample_idx=idx, status='skipped', skip_reason=None, info=None, num_points=0, num_nonfinite=0,
                  skipped_lines=[], unlabelled=[])
    try:
        missing = [f'{kind} file {path}' for kind, path in paths.items() if not osp.isfile(path)]
        if missing:
            raise SceneSkip('missing ' + ', '.join(missing))
        objects, bad = parse_label_file(paths['label'])
        result['skipped_lines'] = [[paths['label'], no, reason] for no, reason in bad]
        if not objects:
            raise SceneSkip(f'{paths["label"]}: no objects' + (f' ({len(bad)} unreadable lines)' if bad else ''))
        k, rtilt = parse_calib(paths['calib'])
        height, width = read_image_size(paths['image'])
        points = load_depth_points(paths['depth'])
        finite = np.isfinite(points).all(1)  # [N]
        if not finite.any():
            raise SceneSkip(f'{paths["depth"]}: every point has a non-finite value')
    except SceneSkip as e:
        result['skip_reason'] = str(e)
        return result

    points = subsample_points(points[finite], task['num_points'], task['seed'], idx)
    instances = _instances(objects, _mapping(task['mapping_file']), paths['label'], result['unlabelled'])
    name = f'{idx:06d}'
    info = dict(
        sample_idx=idx,
        lidar_points=dict(num_pts_feats=6, lidar_path=name + '.bin'),
        # np.int32 height / width as mmdetection3d's infos (its get_image_shape).
        images=dict(CAM0=dict(img_path=name + '.jpg', height=np.int32(height), width=np.int32(width),
                              depth2img=depth2img_matrix(k, rtilt).tolist())),
        instances=instances)
    result.update(status='converted', info=info, num_points=len(points), num_nonfinite=int((~finite).sum()))
    # Outputs first, the record last: a run killed in between redoes the scene.
    atomic_write(outputs['points'], np.ascontiguousarray(points, dtype=np.float32).tobytes())
    _place_image(paths['image'], outputs['image'], task['copy_images'])
    atomic_write(outputs['record'], pickle.dumps(dict(key=key, result=result), protocol=4))
    return result


# ----------------------------------------------------------------------------- a whole dataset

def find_scenes(root: str) -> Tuple[List[int], Dict[str, List[int]]]:
    """The scenes to convert and mmdetection3d's split (``{'train': [...], 'val': [...]}``, may be empty).

    With split index files: the scenes they list; without: every
    ``label/NNNNNN.txt``. Raises FileNotFoundError when ``root`` has no
    ``sunrgbd_trainval/`` folder.
    """
    base = osp.join(root, INPUT_DIR)
    if not osp.isdir(base):
        raise FileNotFoundError(f'{base} not found: --root must hold the extraction folder {INPUT_DIR}/ '
                                f'(depth, image, calib, label)')
    splits = {s: read_split_file(osp.join(base, f'{s}_data_idx.txt')) for s in ('train', 'val')
              if osp.isfile(osp.join(base, f'{s}_data_idx.txt'))}
    if splits:
        return sorted(set().union(*splits.values())), splits
    label_dir = osp.join(base, 'label')
    names = os.listdir(label_dir) if osp.isdir(label_dir) else []
    return sorted(int(n[:-4]) for n in names if re.fullmatch(r'\d+\.txt', n)), {}


def _write_infos(path: str, data_list: List[dict], metainfo: dict) -> None:
    atomic_write(path, pickle.dumps(dict(metainfo=metainfo, data_list=data_list), protocol=4))


def convert(root: str, out_dir: Optional[str] = None, num_points: int = DEFAULT_NUM_POINTS, seed: int = 0,
            workers: int = 1, copy_images: bool = False, mapping_file: Optional[str] = None,
            scene_ids: Optional[Sequence[int]] = None) -> dict:
    """Convert every scene under ``root`` into ``out_dir`` (default: ``root``) and write the infos and report.

    Resumable: a scene whose record matches (same input files, settings and
    mapping) and whose outputs are whole is reused, not redone. Scenes that
    cannot be converted and label lines that cannot be read are skipped,
    counted and named (file and line) in the report; a skipped scene leaves
    no output and no record, so every run tries it again. Objects whose
    name has no class keep ``bbox_label_3d = -1`` and are reported by raw
    name with their counts.

    Args:
        root: folder holding ``sunrgbd_trainval/``.
        out_dir: output root (``points/``, infos, report, records, images).
        num_points: points kept per scene (seeded subsample); ``<= 0`` keeps all.
        seed: subsampling seed.
        workers: processes (the output does not depend on it).
        copy_images: copy the images instead of symlinking them.
        mapping_file: the raw-name table (default: the one shipped).
        scene_ids: only these scenes (default: all, see :func:`find_scenes`).

    Returns:
        The report (also written to ``out_dir/sunrgbd_converter_report.json``).
    """
    out_dir = out_dir or root
    mapping_file = osp.abspath(mapping_file or DEFAULT_MAPPING_FILE)
    mapping = _mapping(mapping_file)  # fails here, once, on a broken table
    ids, splits = find_scenes(root)
    if scene_ids is not None:
        wanted = set(int(i) for i in scene_ids)
        ids = [i for i in ids if i in wanted]
    tasks = [dict(sample_idx=i, root=root, out_dir=out_dir, num_points=int(num_points), seed=int(seed),
                  copy_images=bool(copy_images), mapping_file=mapping_file) for i in ids]
    if workers > 1 and len(tasks) > 1:
        results = track_parallel_progress(convert_scene, tasks, min(workers, len(tasks)))
    else:
        results = track_progress(convert_scene, tasks) if tasks else []

    infos = [r['info'] for r in results if r['info'] is not None]
    metainfo = dict(classes=SUNRGBD37_CLASSES, categories={c: i for i, c in enumerate(SUNRGBD37_CLASSES)},
                    dataset='sunrgbd', info_version='1.1', label_space='sunrgbd37',
                    mapping_sha256=mapping.sha256, num_points=int(num_points), seed=int(seed))
    written = {'trainval': osp.join(out_dir, 'sunrgbd_infos_trainval.pkl')}
    _write_infos(written['trainval'], infos, metainfo)
    for split, split_ids in splits.items():
        keep = set(split_ids)
        written[split] = osp.join(out_dir, f'sunrgbd_infos_{split}.pkl')
        _write_infos(written[split], [info for info in infos if info['sample_idx'] in keep], metainfo)

    report = dict(root=osp.abspath(root), out_dir=osp.abspath(out_dir),
                  settings=dict(num_points=int(num_points), seed=int(seed), copy_images=bool(copy_images),
                                mapping_file=mapping_file, mapping_sha256=mapping.sha256),
                  infos=written, **summarize(results, mapping))
    atomic_write(osp.join(out_dir, REPORT_FILE), json.dumps(report, indent=1).encode('utf-8'))
    return report


def summarize(results: Sequence[dict], mapping: SUNRGBD37Mapping) -> dict:
    """The report of a run: counts of scenes and objects, per-class counts, skips and unlabelled names."""
    status = Counter(r['status'] for r in results)
    per_class = Counter()
    for r in results:
        for inst in (r['info'] or {}).get('instances', []):
            if inst['bbox_label_3d'] >= 0:
                per_class[mapping.classes[inst['bbox_label_3d']]] += 1
    unlabelled = [u for r in results for u in r['unlabelled']]
    by_rule = {rule: Counter(name for _, _, name, r in unlabelled if r == rule) for rule in ('unknown', 'no_class')}
    total = sum(len(r['info']['instances']) for r in results if r['info'] is not None)
    return dict(
        scenes=dict(found=len(results), converted=status['converted'], reused=status['reused'],
                    skipped=status['skipped']),
        skipped_scenes=[dict(scene=r['sample_idx'], reason=r['skip_reason']) for r in results
                        if r['status'] == 'skipped'],
        objects=dict(total=total, labelled=sum(per_class.values()), no_class=sum(by_rule['no_class'].values()),
                     unknown=sum(by_rule['unknown'].values())),
        per_class={c: per_class[c] for c in mapping.classes},
        unknown_names=dict(by_rule['unknown'].most_common()),
        no_class_names=dict(by_rule['no_class'].most_common()),
        skipped_lines=[dict(file=f, line=no, reason=why) for r in results for f, no, why in r['skipped_lines']],
        unlabelled_objects=[dict(file=f, line=no, name=name, rule=rule) for f, no, name, rule in unlabelled],
        points=dict(written=sum(r['num_points'] for r in results),
                    nonfinite_dropped=sum(r['num_nonfinite'] for r in results)))


def format_report(report: dict, max_items: int = 10) -> str:
    """A short human summary of :func:`convert`'s report (the JSON file has every item)."""
    s, o = report['scenes'], report['objects']
    lines = [f'scenes: {s["found"]} found, {s["converted"]} converted, {s["reused"]} reused from records, '
             f'{s["skipped"]} skipped',
             f'objects: {o["total"]} ({o["labelled"]} in the 37 classes, {o["no_class"]} of names deliberately '
             f'without a class, {o["unknown"]} of unknown names; the last two keep bbox_label_3d = -1)',
             'per class: ' + ', '.join(f'{c} {n}' for c, n in report['per_class'].items())]

    def listing(title, items):
        if items:
            lines.append(f'{title} ({len(items)}):')
            lines.extend(f'  {item}' for item in items[:max_items])
            if len(items) > max_items:
                lines.append(f'  ... {len(items) - max_items} more in {REPORT_FILE}')

    listing('skipped scenes', [f'{d["scene"]:06d}: {d["reason"]}' for d in report['skipped_scenes']])
    listing('skipped label lines', [f'{d["file"]}:{d["line"]}: {d["reason"]}' for d in report['skipped_lines']])
    listing('unknown raw names (count)', [f'{n!r}: {c}' for n, c in report['unknown_names'].items()])
    listing('names without a class by rule (count)', [f'{n!r}: {c}' for n, c in report['no_class_names'].items()])
    if report['points']['nonfinite_dropped']:
        lines.append(f'points: {report["points"]["nonfinite_dropped"]} non-finite rows dropped')
    lines.append('infos: ' + ', '.join(report['infos'].values()))
    return '\n'.join(lines)
