"""Batched random augmentation of float image batches.

Every op takes ``x``: float (B, C, H, W) with values in [0, 1], on any device, in either
memory format, and returns a new tensor of the same shape, dtype and device with values in
[0, 1] (the output may be contiguous where the input was channels_last; the input is never
modified). The one exception is :class:`Recolor`, which always returns 3 channels.

Random parameters are drawn per sample from the ``torch.Generator`` passed in (``None``
uses torch's global generator); on CUDA pass a CUDA generator. Each op splits into
``sample_params(x, generator)`` and a deterministic ``apply(x, params)`` so that tests and
callers can supply parameters explicitly. No op loops over samples in Python.

Geometric ops describe themselves as (B, 3, 3) matrices that map each OUTPUT pixel to the
INPUT position it reads, in pixel units centred on the image centre (x right, y down): the
convention of torchvision's ``affine``/``rotate``. :class:`Augment` multiplies them so that
crop + rotate + translate (+ flip) cost a single bilinear resample.
"""

from cnnlab.config.augment import AugmentSpec, augment_op_names, parse_augment
from cnnlab.data.augment.color import (
    LUMA,
    GaussianBlur,
    Recolor,
    RecolorParams,
    contrasting_colors,
    is_gray,
    luminance,
    with_luminance,
)
from cnnlab.data.augment.geometry import (
    Cutout,
    HorizontalFlip,
    PadCrop,
    ResizedCrop,
    Rotate,
    Translate,
    warp,
)
from cnnlab.data.augment.pipeline import Augment, build_augment

__all__ = [
    "LUMA",
    "Augment",
    "AugmentSpec",
    "Cutout",
    "GaussianBlur",
    "HorizontalFlip",
    "PadCrop",
    "Recolor",
    "RecolorParams",
    "ResizedCrop",
    "Rotate",
    "Translate",
    "augment_op_names",
    "build_augment",
    "contrasting_colors",
    "is_gray",
    "luminance",
    "parse_augment",
    "warp",
    "with_luminance",
]
