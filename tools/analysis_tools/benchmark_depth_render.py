"""Speed of multi-view depth rendering (issue 13): the transforms, per object, as the data loader calls them.

    python tools/analysis_tools/benchmark_depth_render.py [--threads 2 1] [--batch 32] [--num 1024]
                                                          [--size 224] [--views 6] [--repeats 3] [--profile]

Case: ``--batch`` objects, each ``--num`` points on the surface of a random box (sides 0.3-1.5 m, a
random yaw), its Gaussians at the points with kNN scales (as a fit starts), random opacities in
[0.05, 0.95] and random rotations (as a fit ends). Per thread count (``torch.set_num_threads``; the
fused rasteriser follows it), the batch is rendered ``--repeats`` times after one warm-up batch
(numba's compile or cache load); the best repeat is reported, in ms per object and per batch, for
``RenderPointDepthViews`` and ``RenderGaussianDepthViews``. ``--profile`` prints where one batch of
each spends its time (torch.profiler, top ops by self CPU time).
"""
import argparse
import time

import numpy as np
import torch

from gsclip_mm.datasets.transforms import RenderGaussianDepthViews, RenderPointDepthViews
from gsclip_mm.gaussians import init_gaussians


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Benchmark multi-view depth rendering')
    p.add_argument('--threads', type=int, nargs='+', default=[2, 1])
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--num', type=int, default=1024, help='points / Gaussians per object')
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--views', type=int, default=6)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--profile', action='store_true')
    return p.parse_args(argv)


def make_objects(batch: int, n: int, seed: int = 0):
    """``batch`` result dicts with ``points`` [n, 6] and ``gaussians`` [n, 14]."""
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(batch):
        half = rng.uniform(0.15, 0.75, 3)
        p = (rng.rand(n, 3) * 2 - 1) * half
        axis = rng.randint(0, 3, n)
        p[np.arange(n), axis] = np.where(rng.rand(n) < 0.5, -1, 1) * half[axis]
        c, s = np.cos(rng.uniform(0, np.pi)), np.sin(rng.uniform(0, np.pi))
        p = p @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]).T + rng.uniform(-3, 3, 3)
        pts = np.concatenate([p, rng.rand(n, 3)], 1).astype(np.float32)
        g = init_gaussians(pts[:, :3], pts[:, 3:])
        g[:, 6] = rng.uniform(0.05, 0.95, n)
        q = rng.randn(n, 4)
        g[:, 10:] = q / np.linalg.norm(q, axis=1, keepdims=True)
        out.append(dict(points=pts, gaussians=g.astype(np.float32)))
    return out


def time_batch(transform, objects, repeats: int) -> float:
    """Best seconds of ``repeats`` runs over the batch (one transform call per object)."""
    best = float('inf')
    for _ in range(repeats):
        t0 = time.perf_counter()
        for obj in objects:
            transform(dict(obj))
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    args = parse_args(argv)
    objects = make_objects(args.batch, args.num)
    common = dict(num_views=args.views, size=args.size)
    transforms = [RenderPointDepthViews(**common), RenderGaussianDepthViews(**common)]
    print(f'{args.batch} objects x {args.num} points / Gaussians, {args.views} views at {args.size}x{args.size}, '
          f'best of {args.repeats}')
    print('| transform | threads | ms / object | ms / batch |')
    print('| --- | --- | --- | --- |')
    for threads in args.threads:
        torch.set_num_threads(threads)
        for t in transforms:
            time_batch(t, objects[:2], 1)  # warm-up: numba compile / cache load, allocator
            sec = time_batch(t, objects, args.repeats)
            print(f'| {t.__class__.__name__} | {threads} | {1e3 * sec / args.batch:.1f} | {1e3 * sec:.0f} |')
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        for t in transforms:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                time_batch(t, objects, 1)
            print(t.__class__.__name__)
            print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=12))


if __name__ == '__main__':
    main()
