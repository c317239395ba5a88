"""The PointCLIP and CLIP2Point configs' settings (``configs/clip2point``), each written once for every data set.

A leaf config names its data set's base (``configs/_base_/datasets/*.py``) beside the method's base
(``configs/clip2point/_base_/*.py``) and takes from here what is built from the values of both: the depth-view
pipelines (the data set's point count and fitting step, the method's views and distance, the CLIP's input size),
the loaders over them and the evaluators with the method's name::

    _base_ = ['./_base_/pointclip_zeroshot.py', '../_base_/datasets/sunrgbd_object.py', '../_base_/default_runtime.py']
    from gsclip_mm.utils.clip2point_variants import pointclip_zeroshot  # noqa: E402
    test_pipeline, test_dataloader, test_evaluator = pointclip_zeroshot(
        'points', _base_.num_points, _base_.num_views, 224, _base_.distance, _base_.test_evaluator)

Why functions and not a base per method: the lists differ with the data set's values, and a base file sees no
other base's values (``configs/README.md``). The returned ``*_dataloader`` are partial dicts that MMEngine
merges into the data set base's, except where said.
"""
from typing import Optional, Sequence

from .config_variants import named_evaluators

#: What both methods pack: the depth views only (no Gaussians for the model).
PACK = dict(type='PackGSCLIPInputs', pack_gaussians=False)


def depth_view_pipeline(source: str, num_points: int, num_views: int, size: int, distance: float,
                        fit_gaussians: Optional[dict] = None) -> list:
    """An object's pipeline to its ``num_views`` depth maps of ``size`` px at camera ``distance``.

    ``source='points'``: its scanned points, ``num_points`` of them by FPS (the count GS-CLIP's encoder sees),
    rendered by CLIP2Point's renderer (nearest point per pixel). ``source='gaussians'`` (ours: CLIP2Point has no
    Gaussians): its Gaussians from the data set's ``fit_gaussians`` step (its fit cache), ``num_points`` of them
    by FPS, splatted as the alpha-weighted expected depth (smooth and hole-free).
    """
    views = dict(num_views=num_views, size=size, distance=distance)
    if source == 'points':
        return [dict(type='LoadObjectPoints'),
                dict(type='SampleGaussians', key='points', num_points=num_points, method='fps'),
                dict(type='RenderPointDepthViews', **views),
                dict(PACK)]
    if source == 'gaussians':
        if fit_gaussians is None:
            raise ValueError("depth maps from Gaussians need the data set's fit_gaussians step")
        return [dict(type='LoadObjectPoints'),
                dict(type='LoadObjectImage'),
                fit_gaussians,
                dict(type='SampleGaussians', num_points=num_points, method='fps'),
                dict(type='RenderGaussianDepthViews', **views),
                dict(PACK)]
    raise KeyError(f"depth maps come from 'points' or 'gaussians', not {source!r}")


def pointclip_zeroshot(source: str, num_points: int, num_views: int, size: int, distance: float,
                       test_evaluator: Sequence[dict], fit_gaussians: Optional[dict] = None):
    """(test_pipeline, test_dataloader, test_evaluator) of PointCLIP's training-free zero-shot from ``source``'s
    depth maps (:func:`depth_view_pipeline`), on the data set base's test split with its metric."""
    pipeline = depth_view_pipeline(source, num_points, num_views, size, distance, fit_gaussians)
    method_name = dict(points='PointCLIP (points)', gaussians='PointCLIP (Gaussians)')[source]
    return pipeline, dict(dataset=dict(pipeline=pipeline)), named_evaluators(test_evaluator, method_name)


def clip2point_zeroshot(pretrained_depth_encoder: str, test_evaluator: Sequence[dict]):
    """(model, test_evaluator) of CLIP2Point's zero-shot over a PointCLIP (points) config: its depth encoder is
    the one pre-trained by ``clip2point_pretrain_*.py``, whose checkpoint's ``depth_encoder.*`` weights load
    strictly by the encoder's init_cfg."""
    model = dict(backbone=dict(
        trainable=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_depth_encoder, prefix='depth_encoder.')))
    return model, named_evaluators(test_evaluator, 'CLIP2Point (zero-shot)')


def clip2point_pretrain(data: dict, num_points: int, num_views: int, size: int, distance: float,
                        pair_distance_jitter: float, clip_image_embedding: dict, val_evaluator: Sequence[dict]):
    """(train_pipeline, test_pipeline, train_dataloader, val_dataloader, test_dataloader, val_evaluator,
    test_evaluator) of CLIP2Point's image-depth pre-training on a data set base's (image crop, points) pairs.

    Training renders the points' depth views twice, the second at a distance jittered by
    ``pair_distance_jitter``, and loads the crop's cached CLIP image embedding (``clip_image_embedding``, the
    step with the CLIP's settings; the image is read only on a cache miss); validation and testing render once
    (:func:`depth_view_pipeline`) and score zero-shot. The training set is the plain training split
    (``data``; it replaces the base's class-balanced wrapper): CLIP2Point's pre-training has no class
    balancing, and a repeated object would be its own NT-Xent negative.
    """
    test = depth_view_pipeline('points', num_points, num_views, size, distance)
    load, sample, render, pack = test
    train = [load, dict(type='LoadObjectImage'), sample, dict(render, pair_distance_jitter=pair_distance_jitter),
             clip_image_embedding, pack]
    train_loader = dict(dataset=dict(data, split='train', pipeline=train, _delete_=True))
    evaluators = named_evaluators(val_evaluator, 'CLIP2Point (pre-training)')
    return (train, test, train_loader, dict(dataset=dict(pipeline=test)), dict(dataset=dict(pipeline=test)),
            evaluators, evaluators)
