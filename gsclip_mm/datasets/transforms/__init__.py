from .clip_image import CLIPImagePreprocess, LoadCLIPImageEmbedding
from .depth_views import RenderGaussianDepthViews, RenderPointDepthViews
from .formatting import PackGSCLIPInputs
from .gaussian_fitting import FitGaussians, PointsToGaussians
from .loading import LoadObjectImage, LoadObjectPoints
from .processing import NormalizeGaussians, RandomGaussianAugment, SampleGaussians

__all__ = [
    'LoadObjectPoints', 'LoadObjectImage', 'SampleGaussians', 'NormalizeGaussians', 'RandomGaussianAugment',
    'PackGSCLIPInputs', 'FitGaussians', 'PointsToGaussians', 'CLIPImagePreprocess', 'LoadCLIPImageEmbedding',
    'RenderPointDepthViews', 'RenderGaussianDepthViews',
]
