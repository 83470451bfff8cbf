"""The augmentation pipeline: a spec's ops in a fixed order, geometric ones fused."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch

from cnnlab.config.augment import AugmentSpec, parse_augment
from cnnlab.data.augment.color import GaussianBlur, Recolor
from cnnlab.data.augment.geometry import (
    Cutout,
    HorizontalFlip,
    MaybeGenerator,
    PadCrop,
    ResizedCrop,
    Rotate,
    Tensor,
    Translate,
    _AffineOp,
    _flip_gather,
    _flip_matrix,
    warp,
)
from cnnlab.data.augment.pen import Elastic, LowResolution, Slant, Stroke

# ---------------------------------------------------------------------------------------------
# The pipeline


class Augment:
    """A spec's ops applied in a fixed order: stroke (gray images), recolor (with gray,
    texture), the fused geometric resample (crop, rotate, translate, slant), elastic,
    pad-crop, flip, blur (with recolor: only the images it painted), lowres, cutout.

    The flip is folded into whichever resample runs anyway (the affine matrix, else the
    pad-crop gather); flipping commutes in distribution with the symmetric ops around it.
    Fusing also means rotation and translation read real pixels beyond a crop box where a
    chain of separate ops would read zeros. With an empty spec the input is returned as is.
    With ``recolor`` the output has 3 channels whatever the input's: the caller decides whether
    to expand gray data to 3 channels beforehand, and must build its model for 3.
    """

    def __init__(self, spec: AugmentSpec) -> None:
        self.spec = spec
        self.stroke = None if spec.stroke is None else Stroke(spec.stroke)
        self.recolor = (
            None
            if spec.recolor is None
            else Recolor(spec.recolor, p_gray=spec.gray or 0.0, texture=spec.texture or 0.0)
        )
        geometric: list[_AffineOp] = []
        if spec.crop is not None:
            geometric.append(ResizedCrop(spec.crop))
        if spec.rotate is not None:
            geometric.append(Rotate(spec.rotate))
        if spec.translate is not None:
            geometric.append(Translate(spec.translate))
        if spec.slant is not None:
            geometric.append(Slant(spec.slant))
        self.geometric = tuple(geometric)
        self.elastic = None if spec.elastic is None else Elastic(spec.elastic)
        self.lowres = None if spec.lowres is None else LowResolution(spec.lowres)
        self.pad_crop = None if spec.pad is None else PadCrop(spec.pad)
        self.flip = None if spec.flip is None else HorizontalFlip(spec.flip)
        self.blur = None if spec.blur is None else GaussianBlur(spec.blur)
        self.cutout = None if spec.cutout is None else Cutout(spec.cutout)

    def __call__(self, x: Tensor, generator: MaybeGenerator = None) -> Tensor:
        painted = None  # with recolor: which images were painted
        if self.stroke is not None:
            x = self.stroke(x, generator)
        if self.recolor is not None:
            params = self.recolor.sample_params(x, generator)
            painted = Recolor.recolored(x, params)
            x = self.recolor.apply(x, params, painted)
        flip = None if self.flip is None else self.flip.sample_params(x, generator)
        if self.geometric:
            h, w = x.shape[-2:]
            matrices = [op.matrix(op.sample_params(x, generator), h, w) for op in self.geometric]
            if flip is not None:
                matrices.append(_flip_matrix(flip))
                flip = None
            # Output-to-input maps compose in application order: the first op leftmost.
            mode = "nearest" if self.spec.nearest else "bilinear"
            x = warp(x, functools.reduce(torch.matmul, matrices), mode)
        if self.elastic is not None:
            x = self.elastic(x, generator)
        if self.pad_crop is not None:
            x = self.pad_crop.apply(x, self.pad_crop.sample_params(x, generator), flip=flip)
            flip = None
        if flip is not None:
            x = _flip_gather(x, flip)
        if self.blur is not None:
            blurred = self.blur(x, generator)
            # With recolor, blur belongs to the painted look: gray digits stay as sharp as
            # the gray test digits (blurring them cost LeNet-5 0.5 points on MNIST), and
            # colour images keep their own look.
            x = (
                blurred
                if painted is None
                else torch.where(painted[:, None, None, None], blurred, x)
            )
        if self.lowres is not None:
            x = self.lowres(x, generator)
        if self.cutout is not None:
            x = self.cutout(x, generator)
        return x

    def __repr__(self) -> str:
        return f"Augment({self.spec.to_string()!r})"


def build_augment(spec: AugmentSpec | str | Mapping[str, object] | None) -> Augment:
    """The callable ``augment(x, generator) -> x`` for a spec (or anything parse_augment takes)."""
    return Augment(parse_augment(spec))
