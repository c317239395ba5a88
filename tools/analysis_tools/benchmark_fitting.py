"""Speed of Gaussian fitting: ms per step (forward + backward + Adam), objects/s, peak memory, PSNR.

    python tools/analysis_tools/benchmark_fitting.py [--threads 2] [--gaussians 2048] [--resolution 64]
                                                     [--batches 1 4 16] [--steps 20] [--quality-steps 100]
                                                     [--backend fused [tiles]] [--scene DIR]

Case (issue 3): a synthetic object of ``--gaussians`` points on a curved
surface filling the view, target ``--resolution`` square rendered from
reference Gaussians. Per batch size B, a fresh subprocess runs ``--steps``
timed steps (after 2 warm-up steps) and reports ms/step, objects/s for a
500-step fit (B / (500 * s/step)) and its peak RSS. The dense reference is
timed on B=1 over ``--dense-steps``. Quality: final PSNR of each CPU
rasteriser (``--backend``: ``fused``, the default, and/or ``tiles``) vs the
dense one after ``--quality-steps`` identical steps. Each row also gives the
first call's seconds (the 2 warm-up steps: numba's compile or its on-disk
cache load for ``fused``).
``--scene DIR`` instead times one forward + backward of a whole real scene
(the first of DIR's ``sunrgbd_infos_val.pkl``, every point a Gaussian with
kNN scales, identity rotation, opacity 0.8 and its colour, full image size),
``--scene-repeats`` times per backend, each backend in a fresh process.
``--scene DIR --scene-fit`` instead runs the whole scene fit of the paper's
procedure (``mode='scene'``: ``--scene-steps`` steps, default 500, opacity
reset every 50, pruning at 0.005, image at ``--scene-scale``) on scene
``--scene-index`` of ``DIR/--scene-ann`` and reports its seconds (input
preparation incl. the kNN scales, and the fit), PSNR, pruned Gaussians and
peak memory.
Workers run as ``tools/fit_gaussians.py`` does (glibc malloc keeps freed
memory, ``OMP_WAIT_POLICY=PASSIVE``) unless ``--no-tuning``.
On CUDA the same is reported for gsplat's rasteriser.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from gsclip_mm.utils.cpu_tuning import set_omp_wait_policy


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Benchmark Gaussian fitting')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--gaussians', type=int, default=2048)
    p.add_argument('--resolution', type=int, default=64)
    p.add_argument('--batches', type=int, nargs='+', default=[1, 4, 16])
    p.add_argument('--steps', type=int, default=20, help='timed steps per measurement')
    p.add_argument('--dense-steps', type=int, default=3)
    p.add_argument('--quality-steps', type=int, default=100)
    p.add_argument('--fit-steps', type=int, default=500, help='steps of a full fit, for objects/s')
    p.add_argument('--backend', nargs='+', default=['fused'], choices=['fused', 'tiles'],
                   help='CPU rasteriser(s) to time (gsplat is added on CUDA)')
    p.add_argument('--profile', action='store_true',
                   help='instead: profile --steps steps of batch 1 (first --backend) and print the top ops')
    p.add_argument('--scene', default=None,
                   help='instead: time forward + backward of the first scene of DIR/sunrgbd_infos_val.pkl')
    p.add_argument('--scene-repeats', type=int, default=5)
    p.add_argument('--scene-opacity', type=float, default=0.8, help='with --scene: every Gaussian\'s opacity')
    p.add_argument('--gsplat-boxes', action='store_true',
                   help="with --scene: bin Gaussians by gsplat's 3-sigma boxes instead of the opacity-aware ones "
                   '(the A/B of rasterize_fused._opacity_radii; same image)')
    p.add_argument('--scene-fit', action='store_true', help='with --scene: time the whole 500-step scene fit')
    p.add_argument('--scene-ann', default='sunrgbd_infos_val.pkl', help='with --scene: the infos file in DIR')
    p.add_argument('--scene-index', type=int, default=0, help='with --scene: which scene of the infos')
    p.add_argument('--scene-steps', type=int, default=500)
    p.add_argument('--scene-scale', type=float, default=1.0)
    p.add_argument('--no-tuning', action='store_true',
                   help="glibc's default malloc and OpenMP's default (spinning) barrier wait, as a plain process")
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_inputs(batch: int, n: int, res: int, seed: int = 0):
    """FitInputs of synthetic objects: points on a curved sheet at depth ~2, target rendered from them."""
    from gsclip_mm.gaussians.fitting import FitInput, knn_scales
    from gsclip_mm.gaussians.rasterize import rasterize
    g = torch.Generator().manual_seed(seed)
    K = np.array([[res * 1.1, 0, res / 2], [0, res * 1.1, res / 2], [0, 0, 1.0]])
    out = []
    for _ in range(batch):
        uv = torch.rand(n, 2, generator=g) * 1.6 - 0.8
        xyz = torch.stack([uv[:, 0], uv[:, 1], 2.0 + 0.4 * torch.sin(3 * uv[:, 0]) * torch.cos(2 * uv[:, 1])], 1)
        rgb = torch.rand(n, 3, generator=g)
        scale = knn_scales(xyz, 3)[None, :, None].repeat(1, 1, 3) * (0.5 + torch.rand(1, n, 3, generator=g))
        quat = torch.randn(1, n, 4, generator=g)
        target, _ = rasterize(xyz[None], quat, scale, torch.full((1, n), 0.8), rgb[None], torch.eye(4)[None],
                              torch.from_numpy(K).float()[None], res, res, background=torch.zeros(1, 3))
        out.append(FitInput(xyz=xyz.numpy(), rgb=(0.5 * rgb + 0.25).numpy(), target=target[0].numpy(),
                            crop=target[0].numpy(), mask=np.ones((res, res), bool), K=K, viewmat=np.eye(4),
                            name='synthetic'))
    return out


def worker(spec: dict) -> dict:
    """Time ``steps`` fitting steps of a batch in this process; report ms/step, peak RSS, final PSNR."""
    from gsclip_mm.gaussians import FitSettings, fit_batch
    if spec.get('tuning', True):
        from gsclip_mm.utils import tune_glibc_malloc
        tune_glibc_malloc()
    torch.set_num_threads(spec['threads'])
    device = 'cuda' if spec['backend'] == 'gsplat' else 'cpu'
    inputs = make_inputs(spec['batch'], spec['gaussians'], spec['resolution'])
    s = FitSettings.build(resolution=spec['resolution'], max_gaussians=spec['gaussians'], mask_target=False)
    t0 = time.perf_counter()
    fit_batch(inputs, FitSettings.build(s, num_steps=2), device, spec['backend'], return_images=False)  # warm-up
    if device == 'cuda':
        torch.cuda.synchronize()
    first_s = time.perf_counter() - t0  # includes numba's compile (or cache load) for 'fused'
    t0 = time.perf_counter()
    res = fit_batch(inputs, FitSettings.build(s, num_steps=spec['steps']), device, spec['backend'],
                    return_images=False)
    if device == 'cuda':
        torch.cuda.synchronize()
    # fit_batch renders once more for the final PSNR: count it as a step's forward, i.e. slightly pessimistic
    sec = (time.perf_counter() - t0) / spec['steps']
    return dict(spec, ms_per_step=1000 * sec, objects_per_s=spec['batch'] / (sec * spec['fit_steps']),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                psnr=float(np.mean([r.psnr for r in res])), first_s=first_s)


def scene_worker(spec: dict) -> dict:
    """ms of forward + backward of a whole scene, each of ``repeats`` runs, and the first call's."""
    import pickle

    from gsclip_mm.gaussians.camera import decompose_depth2img, viewmat_from_rotation
    from gsclip_mm.gaussians.fitting import knn_scales
    from gsclip_mm.gaussians.rasterize import rasterize
    if spec.get('tuning', True):
        from gsclip_mm.utils import tune_glibc_malloc
        tune_glibc_malloc()
    torch.set_num_threads(spec['threads'])
    with open(os.path.join(spec['scene'], 'sunrgbd_infos_val.pkl'), 'rb') as f:
        info = pickle.load(f)['data_list'][0]
    pts = np.fromfile(os.path.join(spec['scene'], 'points', info['lidar_points']['lidar_path']), np.float32)
    pts = torch.from_numpy(pts.reshape(-1, 6))
    K, R = decompose_depth2img(np.asarray(info['images']['CAM0']['depth2img']))
    H, W = int(info['images']['CAM0']['height']), int(info['images']['CAM0']['width'])
    n = pts.shape[0]
    params = [torch.tensor([1.0, 0, 0, 0]).repeat(1, n, 1), knn_scales(pts[:, :3], 3)[None, :, None].repeat(1, 1, 3),
              torch.full((1, n), spec.get('opacity', 0.8)), pts[None, :, 3:].clone()]
    if spec.get('gsplat_boxes'):  # the A/B: radii as the projection gives them
        import gsclip_mm.gaussians.rasterize_fused as fused
        fused._opacity_radii = lambda conics, o, radii, margin: radii.astype(np.float64)
    params = [p.requires_grad_() for p in params]
    cam = (torch.from_numpy(viewmat_from_rotation(R)).float()[None], torch.from_numpy(K).float()[None])
    cotangent = torch.randn(1, H, W, 3, generator=torch.Generator().manual_seed(0))
    ms = []
    for _ in range(spec['repeats'] + 1):  # the first includes numba's compile or cache load
        t0 = time.perf_counter()
        img, _ = rasterize(pts[None, :, :3], *params[:3], params[3], *cam, W, H, backend=spec['backend'])
        torch.autograd.backward(img, cotangent)
        ms.append(1000 * (time.perf_counter() - t0))
    return dict(spec, points=n, width=W, height=H, first_ms=ms[0], ms=ms[1:], median_ms=float(np.median(ms[1:])))


def scene_fit_worker(spec: dict) -> dict:
    """The paper's fit of one whole scene (FitSettings mode='scene'); seconds, PSNR, pruned, peak RSS."""
    import pickle

    import mmcv

    from gsclip_mm.gaussians import FitSettings, fit_batch, prepare_scene_fit_input
    if spec.get('tuning', True):
        from gsclip_mm.utils import tune_glibc_malloc
        tune_glibc_malloc()
    torch.set_num_threads(spec['threads'])
    with open(os.path.join(spec['scene'], spec['ann']), 'rb') as f:
        info = pickle.load(f)['data_list'][spec['index']]
    pts = np.fromfile(os.path.join(spec['scene'], 'points', info['lidar_points']['lidar_path']), np.float32)
    img = mmcv.imread(os.path.join(spec['scene'], 'sunrgbd_trainval', 'image', info['images']['CAM0']['img_path']),
                      channel_order='rgb')
    s = FitSettings.build(mode='scene', scene_scale=spec['scale'], num_steps=spec['steps'], opacity_reset_interval=50,
                          prune_opacity=0.005)
    t0 = time.perf_counter()
    inp = prepare_scene_fit_input(pts.reshape(-1, 6), img, np.asarray(info['images']['CAM0']['depth2img']), s)
    fit_batch([inp], FitSettings.build(s, num_steps=1), 'cpu', spec['backend'], return_images=False)  # warm-up
    prep_s = time.perf_counter() - t0  # includes the kNN scales and numba's cache load
    t0 = time.perf_counter()
    res = fit_batch([inp], s, 'cpu', spec['backend'], return_images=False)[0]
    fit_s = time.perf_counter() - t0
    return dict(spec, points=int(inp.xyz.shape[0]), height=int(inp.target.shape[0]), width=int(inp.target.shape[1]),
                prep_s=prep_s, fit_s=fit_s, ms_per_step=1000 * fit_s / max(spec['steps'], 1), psnr=res.psnr,
                pruned=res.pruned, kept=len(res.gaussians), peak_rss_mb=resource.getrusage(
                    resource.RUSAGE_SELF).ru_maxrss / 1024)


def run(spec: dict) -> dict:
    """Run :func:`worker` (or :func:`scene_worker` for a spec with a scene) in a fresh process."""
    env = dict(os.environ)
    if spec.get('tuning', True):
        set_omp_wait_policy(env)  # as tools/fit_gaussians.py does (the child reads it when it loads torch)
    out = subprocess.run([sys.executable, __file__, '--worker', json.dumps(spec)], check=True, capture_output=True,
                         text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def profile_steps(args) -> str:
    """torch.profiler table of ``--steps`` fitting steps (batch 1, the first --backend) in this process.

    For ``fused`` the rows ``_RasterizeFused`` and ``_RasterizeFusedBackward`` are the kernels'
    share of a step (numba runs inside them; the projection and loss are the ATen rows).
    """
    from torch.profiler import ProfilerActivity, profile

    from gsclip_mm.gaussians import FitSettings, fit_batch
    from gsclip_mm.utils import tune_glibc_malloc
    if not args.no_tuning:
        tune_glibc_malloc()
    torch.set_num_threads(args.threads)
    inputs = make_inputs(1, args.gaussians, args.resolution)
    s = FitSettings.build(resolution=args.resolution, max_gaussians=args.gaussians, mask_target=False)
    backend = args.backend[0]
    fit_batch(inputs, FitSettings.build(s, num_steps=2), 'cpu', backend, return_images=False)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit_batch(inputs, FitSettings.build(s, num_steps=args.steps), 'cpu', backend, return_images=False)
    return prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=15)


def main_scene(args) -> list:
    """Forward + backward of a whole scene per backend (each in a fresh process), printed; or its whole fit."""
    if args.scene_fit:
        rows = [run(dict(scene=os.path.abspath(args.scene), fit=True, ann=args.scene_ann, index=args.scene_index,
                         steps=args.scene_steps, scale=args.scene_scale, backend=be, threads=args.threads,
                         tuning=not args.no_tuning)) for be in args.backend]
        for r in rows:
            print(f'{r["backend"]:6s} scene fit: {r["points"]} Gaussians, {r["width"]}x{r["height"]}, '
                  f'{r["steps"]} steps, '
                  f'threads={r["threads"]}: fit {r["fit_s"]:.1f} s ({r["ms_per_step"]:.0f} ms/step), preparation + '
                  f'warm-up {r["prep_s"]:.1f} s; PSNR {r["psnr"]:.2f} dB; pruned {r["pruned"]}, kept {r["kept"]}; '
                  f'peak RSS {r["peak_rss_mb"]:.0f} MiB')
        return rows
    rows = [run(dict(scene=os.path.abspath(args.scene), backend=be, threads=args.threads, repeats=args.scene_repeats,
                     opacity=args.scene_opacity, gsplat_boxes=args.gsplat_boxes,
                     tuning=not args.no_tuning)) for be in args.backend]
    for r in rows:
        boxes = "gsplat's boxes" if r.get('gsplat_boxes') else 'opacity-aware boxes'
        print(f'{r["backend"]:6s} scene {r["points"]} Gaussians {r["width"]}x{r["height"]} threads={r["threads"]} '
              f'opacity {r.get("opacity", 0.8)} {boxes}: '
              f'forward + backward median {r["median_ms"]:.0f} ms (runs {", ".join(f"{m:.0f}" for m in r["ms"])}; '
              f'first call {r["first_ms"]:.0f} ms)')
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.profile:
        print(profile_steps(args))
        return None
    if args.worker:
        spec = json.loads(args.worker)
        fn = (scene_fit_worker if spec.get('fit') else scene_worker) if 'scene' in spec else worker
        print(json.dumps(fn(spec)))
        return None
    if args.scene:
        return main_scene(args)
    base = dict(threads=args.threads, gaussians=args.gaussians, resolution=args.resolution, fit_steps=args.fit_steps,
                tuning=not args.no_tuning)
    rows = []
    backends = args.backend + (['gsplat'] if torch.cuda.is_available() else [])
    for backend in backends:
        for b in args.batches:
            rows.append(run(dict(base, backend=backend, batch=b, steps=args.steps)))
    rows.append(run(dict(base, backend='dense', batch=1, steps=args.dense_steps)))
    quality = {be: run(dict(base, backend=be, batch=1, steps=args.quality_steps))['psnr']
               for be in args.backend + ['dense']}
    print(f'threads={args.threads} gaussians={args.gaussians} target={args.resolution}x{args.resolution} '
          f'tuning={"off" if args.no_tuning else "on (mallopt, OMP_WAIT_POLICY=PASSIVE)"}')
    print(f'{"backend":8s} {"batch":>5s} {"ms/step":>9s} {"ms/step/obj":>11s} {"obj/s (500 st)":>14s} '
          f'{"peak RSS MB":>11s} {"first call s":>12s}')
    for r in rows:
        print(f'{r["backend"]:8s} {r["batch"]:5d} {r["ms_per_step"]:9.1f} {r["ms_per_step"] / r["batch"]:11.1f} '
              f'{r["objects_per_s"]:14.3f} {r["peak_rss_mb"]:11.0f} {r["first_s"]:12.2f}')
    for be in args.backend:
        print(f'PSNR after {args.quality_steps} steps: {be} {quality[be]:.2f} dB, dense {quality["dense"]:.2f} dB '
              f'(difference {quality[be] - quality["dense"]:+.3f} dB)')
    return dict(rows=rows, quality=quality)


if __name__ == '__main__':
    main()
