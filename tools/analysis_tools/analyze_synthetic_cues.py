"""How separable are the classes by one cue? A quick check of a written set.

Trains a small classifier (one hidden layer, torch, CPU) on hand-made
features of the objects of the 10 test classes in the training scenes and
reports the mean class accuracy on the held-out scenes (a seeded cut by
scene of ``sunrgbd_infos_trainval.pkl``, ``--held-out`` of them), per cue:
box size alone, colour alone, point count alone,
rotation-invariant shape alone (scale removed), and all together; with
``--pointnet`` also a small PointNet on the unit-sphere-normalised points
(xyz, then xyz + rgb), closer to what the 3D encoder sees::

    python tools/analysis_tools/analyze_synthetic_cues.py data/synthetic_sunrgbd --pointnet

It is a sanity check of docs/synthetic.md's claims, not part of training.
"""
import argparse
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
import torch

from gsclip_mm.datasets.sunrgbd_object import split_units
from gsclip_mm.datasets.synthetic import TEST_CLASSES as CLASSES
from gsclip_mm.datasets.utils import load_infos
from gsclip_mm.structures.boxes import points_in_rboxes


def object_features(pts: np.ndarray, b: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-cue features of one object's points [N, 6] in its box b [7]."""
    xyz = pts[:, :3].astype(np.float64)
    rgb = pts[:, 3:]
    c = xyz - xyz.mean(0)
    c /= np.linalg.norm(c, axis=1).max() + 1e-9  # unit sphere: no scale
    r = np.linalg.norm(c[:, :2], axis=1)
    joint = np.histogram2d(c[:, 2], r, bins=(8, 6),
                           range=((-1, 1), (0, 1)))[0].ravel() / len(c)
    rng = np.random.default_rng(0)
    i, j = rng.integers(len(c), size=(2, 2000))
    d2 = np.histogram(np.linalg.norm(c[i] - c[j], axis=1), 12, (0, 2))[0] / 2000
    hist = [np.histogram(rgb[:, k], 6, (0, 1))[0] / len(rgb) for k in range(3)]
    return dict(
        size=np.array([*sorted(b[3:5]), b[5]]),
        colour=np.concatenate([rgb.mean(0), rgb.std(0), *hist]),
        count=np.array([np.log(len(pts))]),
        shape=np.concatenate([joint, d2]))


def collect(root: str, infos: str, num_points: int = 512
            ) -> Tuple[Dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Features of every object of the 10 test classes in an infos file,
    its label [M] (index into CLASSES) and its scene's position in the
    file [M]; the ``points`` entry is [M, num_points, 6] (unit sphere xyz,
    rgb)."""
    loaded = load_infos(osp.join(root, infos))
    names = loaded['metainfo'].get('classes', CLASSES)
    feats: Dict[str, List[np.ndarray]] = {}
    labels, scenes = [], []
    for scene, info in enumerate(loaded['data_list']):
        pts = np.fromfile(osp.join(root, 'points',
                                   info['lidar_points']['lidar_path']),
                          np.float32).reshape(-1, 6)
        for inst in info['instances']:
            lab = inst['bbox_label_3d']
            if lab < 0 or names[lab] not in CLASSES:
                continue
            b = np.array(inst['bbox_3d'])
            m = points_in_rboxes(pts[:, :3].astype(np.float64), b[None])[0]
            if m.sum() < 10:
                continue
            for k, v in object_features(pts[m], b).items():
                feats.setdefault(k, []).append(v)
            sel = np.random.default_rng(len(labels)).choice(
                m.sum(), num_points, replace=m.sum() < num_points)
            o = pts[m][sel].astype(np.float64)
            o[:, :3] -= o[:, :3].mean(0)
            o[:, :3] /= np.linalg.norm(o[:, :3], axis=1).max() + 1e-9
            feats.setdefault('points', []).append(o.astype(np.float32))
            labels.append(CLASSES.index(names[lab]))
            scenes.append(scene)
    return ({k: np.stack(v) for k, v in feats.items()}, np.array(labels),
            np.array(scenes))


def class_mean_accuracy(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean over the classes present in ``gt`` of each class's accuracy
    (so a frequent class counts no more than a rare one)."""
    return float(np.mean([(pred[gt == c] == c).mean() for c in np.unique(gt)]))


def mlp_accuracy(xtr, ytr, xte, yte, steps: int = 600,
                 seed: int = 0) -> float:
    """Fit a 1-hidden-layer MLP on (xtr, ytr); mean per-class accuracy on
    the test classes present."""
    torch.manual_seed(seed)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr = torch.tensor((xtr - mu) / sd, dtype=torch.float32)
    xte = torch.tensor((xte - mu) / sd, dtype=torch.float32)
    ytr_t = torch.tensor(ytr)
    # class-balanced loss, as the training uses class-balanced sampling
    w = torch.tensor(1.0 / np.maximum(np.bincount(ytr, minlength=len(CLASSES)),
                                      1), dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(xtr.shape[1], 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, len(CLASSES)))
    opt = torch.optim.Adam(net.parameters(), 1e-2, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xtr), ytr_t, weight=w).backward()
        opt.step()
    return class_mean_accuracy(net(xte).argmax(1).numpy(), yte)


def pointnet_accuracy(ptr, ytr, pte, yte, channels: int = 3,
                      epochs: int = 40, seed: int = 0) -> float:
    """Small PointNet (shared MLP + max pool) on [M, N, 6] points with
    rotation-about-z, scale and jitter augmentation; mean class accuracy."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv1d(channels, 64, 1), torch.nn.BatchNorm1d(64),
        torch.nn.ReLU(), torch.nn.Conv1d(64, 128, 1),
        torch.nn.BatchNorm1d(128), torch.nn.ReLU(),
        torch.nn.Conv1d(128, 256, 1), torch.nn.AdaptiveMaxPool1d(1),
        torch.nn.Flatten(), torch.nn.Linear(256, 128), torch.nn.ReLU(),
        torch.nn.Dropout(0.3), torch.nn.Linear(128, len(CLASSES)))
    xtr = torch.tensor(ptr[..., :channels])
    ytr_t = torch.tensor(ytr)
    w = torch.tensor(1.0 / np.maximum(np.bincount(ytr, minlength=len(CLASSES)),
                                      1), dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(xtr), generator=g).split(32):
            x = xtr[idx].clone()  # [B, N, C]
            a = torch.rand(len(idx), generator=g) * 2 * np.pi
            c, s = torch.cos(a)[:, None], torch.sin(a)[:, None]
            x0, x1 = x[..., 0].clone(), x[..., 1].clone()
            x[..., 0], x[..., 1] = c * x0 - s * x1, s * x0 + c * x1
            x[..., :3] *= 0.9 + 0.2 * torch.rand(len(idx), 1, 1, generator=g)
            x[..., :3] += 0.01 * torch.randn(x[..., :3].shape, generator=g)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(
                net(x.transpose(1, 2)), ytr_t[idx], weight=w).backward()
            opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        pred = net(torch.tensor(pte[..., :channels]).transpose(1, 2)
                   ).argmax(1).numpy()
    return class_mean_accuracy(pred, yte)


def main(argv=None) -> Dict[str, float]:
    """Print and return the mean class accuracy on the held-out scenes per cue (``'size + colour'``, ...)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('data_root')
    p.add_argument('--infos', default='sunrgbd_infos_trainval.pkl',
                   help='infos file under data_root')
    p.add_argument('--held-out', type=float, default=0.3,
                   help='share of the scenes held out for scoring')
    p.add_argument('--seed', type=int, default=0, help='seed of the cut')
    p.add_argument('--pointnet', action='store_true',
                   help='also train a small PointNet (a minute or two on CPU)')
    args = p.parse_args(argv)
    feats, labels, scenes = collect(args.data_root, args.infos)
    num_scenes = len(load_infos(osp.join(args.data_root, args.infos))['data_list'])
    # the dataset's own seeded cut by scene, so no room is on both sides
    train = split_units(num_scenes, 1 - args.held_out, 0.0, args.seed)[scenes] == 'train'
    ftr, ytr = {k: v[train] for k, v in feats.items()}, labels[train]
    fte, yte = {k: v[~train] for k, v in feats.items()}, labels[~train]
    print(f'{len(ytr)} train / {len(yte)} held-out objects; mean class '
          f'accuracy on the held-out scenes (chance '
          f'{1 / len(np.unique(yte)):.2f}):')
    cues = [('size',), ('colour',), ('count',), ('shape',),
            ('shape', 'colour'), ('size', 'colour', 'count'),
            ('size', 'colour', 'count', 'shape')]
    results = {}
    for cue in cues:
        xtr = np.concatenate([ftr[k] for k in cue], 1)
        xte = np.concatenate([fte[k] for k in cue], 1)
        results[' + '.join(cue)] = mlp_accuracy(xtr, ytr, xte, yte)
    if args.pointnet:
        for ch, name in ((3, 'PointNet xyz'), (6, 'PointNet xyz + rgb')):
            results[name] = pointnet_accuracy(ftr['points'], ytr, fte['points'], yte, ch)
    for name, acc in results.items():
        print(f'  {name:32s} {acc:.3f}')
    return results


if __name__ == '__main__':
    main()
