"""Functional kernels for lifting points to 3D Gaussians: cameras, rasterisers, fitting, PLY I/O, cache, and
the fitting service over them (:class:`GaussianFitter`)."""
from .cache import GaussianCache, cache_key, cut_cache_key, file_sha256, points_sha256, scene_cache_key
from .camera import FitInputError, crop_intrinsics, decompose_depth2img
from .fitter import FitStats, GaussianFitter
from .fitting import (FitInput, FitResult, FitSettings, cut_object, fit_batch, fit_gaussians, init_gaussians,
                      knn_scales, prepare_fit_input, prepare_scene_fit_input, render_gaussians)
from .losses import photometric_loss
from .metrics import psnr, ssim
from .ply import PLYError, gaussians_to_ply, ply_to_gaussians
from .rasterize import project_gaussians, rasterize, rasterize_dense, rasterize_tiles

__all__ = [
    'GaussianCache', 'cache_key', 'cut_cache_key', 'scene_cache_key', 'file_sha256', 'points_sha256',
    'FitInputError', 'crop_intrinsics', 'decompose_depth2img', 'FitStats', 'GaussianFitter', 'FitInput', 'FitResult',
    'FitSettings', 'cut_object', 'fit_batch', 'fit_gaussians', 'init_gaussians', 'knn_scales', 'prepare_fit_input',
    'prepare_scene_fit_input', 'render_gaussians', 'photometric_loss', 'psnr', 'ssim', 'PLYError', 'gaussians_to_ply',
    'ply_to_gaussians', 'project_gaussians', 'rasterize', 'rasterize_dense', 'rasterize_tiles'
]
