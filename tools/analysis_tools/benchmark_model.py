"""Speed and memory of the GS-CLIP model (issue 5): backbone and point ops.

Reports, for a batch of ``--batch`` x ``--points`` random Gaussians on
``--threads`` CPU threads (and on CUDA when present): the PointNet2GAF
backbone's forward+backward time (GS-CLIP and the CLIP^2-style baseline),
farthest-point sampling, ball query and kNN times at the first
set-abstraction level's sizes, one full training iteration of the synthetic
GS-CLIP config with cached CLIP embeddings, and peak memory. Times are the median and the
minimum over ``--iters`` runs after ``--warmup`` runs; on a shared machine
the minimum is the less noisy figure.

    python tools/analysis_tools/benchmark_model.py --batch 32 --points 1024 --threads 2
    python tools/analysis_tools/benchmark_model.py --malloc-tuning   # see tune_glibc_malloc

Peak memory: CPU, the process's maximum resident set size
(``resource.getrusage``; tracemalloc does not see torch's allocations), before
and after the runs; CUDA, ``torch.cuda.max_memory_allocated``.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time
from typing import Callable, Dict

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from gsclip_mm.models.backbones.pointnet2_gaf import DEFAULT_SA_CFG
from gsclip_mm.ops import ball_query, furthest_point_sample, knn, mmcv_ops_available
from gsclip_mm.registry import MODELS
from gsclip_mm.structures import GS_DIM, GS_FEATURES, GSCLIPDataSample
from gsclip_mm.utils import atomic_write, tune_glibc_malloc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tools/analysis_tools/..
SYNTHETIC_CFG = os.path.join(ROOT, 'configs', 'gsclip', 'gsclip_pointnet2-tiny-gaf_1xb32-cosine-20e_synthetic.py')
BACKBONES = {
    'gsclip': dict(type='PointNet2GAF'),
    'baseline': dict(type='PointNet2GAF', with_gaf=False, in_features=('xyz', 'rgb')),
}


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark the GS-CLIP backbone and point ops')
    parser.add_argument('--batch', type=int, default=32, help='batch size B')
    parser.add_argument('--points', type=int, default=1024, help='Gaussians per object N')
    parser.add_argument('--threads', type=int, default=2, help='CPU threads (torch.set_num_threads)')
    parser.add_argument('--iters', type=int, default=10, help='timed runs per figure')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs before timing')
    parser.add_argument('--device', choices=['cpu', 'cuda', 'all'], default='all',
                        help="'all': the CPU, and CUDA when present")
    parser.add_argument('--malloc-tuning', action='store_true',
                        help='raise glibc malloc thresholds first (see tune_glibc_malloc)')
    parser.add_argument('--out', help='also write the results as JSON to this file')
    return parser.parse_args()


def random_gaussians(batch: int, points: int, device: str) -> torch.Tensor:
    """``[B, N, 14]`` Gaussians in the unit cube with valid features."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, points, GS_DIM, generator=g)
    x[..., GS_FEATURES['xyz']] = x[..., GS_FEATURES['xyz']] * 2 - 1
    x[..., GS_FEATURES['scale']] *= 0.05
    x[..., GS_FEATURES['rot']] /= x[..., GS_FEATURES['rot']].norm(dim=-1, keepdim=True)
    return x.to(device)


def time_ms(fn: Callable[[], object], device: str, iters: int, warmup: int) -> Dict[str, float]:
    """Median and minimum wall time of ``fn`` in milliseconds, and the median
    CPU time of the process (all threads, user + system): on a machine shared
    with other jobs it grows less than the wall time does."""
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times, cpu_times = [], []
    for _ in range(iters):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
        cpu_times.append((time.process_time() - cpu_start) * 1e3)
    return dict(median_ms=round(statistics.median(times), 1), min_ms=round(min(times), 1),
                median_cpu_ms=round(statistics.median(cpu_times), 1))


def max_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_iteration(x: torch.Tensor) -> Callable[[], object]:
    """One ``train_step`` (data preprocessor, backbone, frozen-CLIP head loss,
    backward, AdamW step) of the synthetic GS-CLIP config on ``x`` [B, N, 14].

    The crops' CLIP image embeddings are inputs, as the training pipeline's
    ``LoadCLIPImageEmbedding`` gives them from its cache (random unit vectors
    here); the class text embeddings are computed once, by a first, untimed call.
    """
    cfg = Config.fromfile(SYNTHETIC_CFG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(x.device)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    classes = cfg.model.head.eval_classes
    g = torch.Generator().manual_seed(0)
    img_embed = torch.nn.functional.normalize(torch.randn(x.shape[0], model.head.embed_dims, generator=g), dim=-1)
    data = dict(
        inputs=[dict(gaussians=x[i], img_embed=img_embed[i], norm_scale=torch.ones(1)) for i in range(x.shape[0])],
        data_samples=[
            GSCLIPDataSample(metainfo=dict(class_name=classes[i % len(classes)])).set_gt_label(i % len(classes))
            for i in range(x.shape[0])
        ])
    model.train_step(data, optim_wrapper)  # fills the text embedding cache
    return lambda: model.train_step(data, optim_wrapper)


def bench_device(args, device: str) -> Dict[str, object]:
    """All figures on one device."""
    x = random_gaussians(args.batch, args.points, device)
    xyz = x[..., :3].contiguous()  # [B, N, 3]
    num_centres, radius, num_sample = DEFAULT_SA_CFG['num_points'][0], DEFAULT_SA_CFG['radii'][0], \
        DEFAULT_SA_CFG['num_samples'][0]
    centres = xyz[:, :num_centres].contiguous()  # [B, M, 3]
    res: Dict[str, object] = dict(device=device, mmcv_ops=device == 'cuda' and mmcv_ops_available())
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    res['rss_before_mib'] = round(max_rss_mib(), 1)
    res[f'fps_{num_centres}_of_{args.points}'] = time_ms(
        lambda: furthest_point_sample(xyz, num_centres), device, args.iters, args.warmup)
    res[f'ball_query_r{radius}_k{num_sample}'] = time_ms(
        lambda: ball_query(0., radius, num_sample, xyz, centres), device, args.iters, args.warmup)
    res[f'knn_k{num_sample}'] = time_ms(lambda: knn(num_sample, xyz, centres), device, args.iters, args.warmup)
    for name, cfg in BACKBONES.items():
        torch.manual_seed(0)
        model = MODELS.build(cfg).to(device).train()

        def step(model=model):  # bound now: the loop rebinds (and deletes) the name
            model.zero_grad(set_to_none=True)
            model(x)['embedding'].square().mean().backward()

        res[f'backbone_{name}_fwd_bwd'] = time_ms(step, device, args.iters, args.warmup)
        del model
    res['train_iter_gsclip'] = time_ms(train_iteration(x), device, args.iters, args.warmup)
    res['peak_rss_mib'] = round(max_rss_mib(), 1)
    if device == 'cuda':
        res['cuda_peak_allocated_mib'] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return res


def main():
    args = parse_args()
    tuned = tune_glibc_malloc() if args.malloc_tuning else False
    torch.set_num_threads(args.threads)
    devices = ['cpu'] if args.device == 'cpu' else ['cuda'] if args.device == 'cuda' else \
        ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    if 'cuda' in devices and not torch.cuda.is_available():
        sys.exit('--device cuda: no CUDA device is available')
    header = dict(batch=args.batch, points=args.points, threads=args.threads, iters=args.iters,
                  malloc_tuning=tuned, torch=torch.__version__, sa_cfg=DEFAULT_SA_CFG)
    print(json.dumps(header))
    results = []
    for device in devices:
        res = bench_device(args, device)
        results.append(res)
        print(json.dumps(res, indent=2))
    if args.out:
        atomic_write(args.out, json.dumps(dict(header, results=results), indent=2).encode())


if __name__ == '__main__':
    main()
