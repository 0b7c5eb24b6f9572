"""The coarse-to-fine schedule: the picture is optimized at growing sizes, each from the last.

From ``min_size`` (long side) up to ``size``, each scale about ``SCALE_FACTOR`` (√2) times the
one before, so each has about twice the pixels of the last; the last is exactly ``size``.
Each scale starts from the previous scale's result, upsampled, with its own content image and
style targets (recomputed from the originals at that scale's size) and a fresh optimizer.
Coarse scales are cheap (the scales below the last cost about as much per step, all together, as
one step of the last), and they settle the large-scale structure that single-scale
optimization at a large size gets slowly, if at all (crowsonkb's style-transfer-pytorch).

Steps: ``num_steps`` at the last scale, ``coarse_steps`` at each scale before it.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["SCALE_FACTOR", "DEFAULT_MIN_SIZE", "scale_sizes", "scale_steps", "upsample"]

SCALE_FACTOR = math.sqrt(2)
DEFAULT_MIN_SIZE = 256  # chosen from benchmarks/style.py --mode scales (README)


def scale_sizes(size: int, min_size: Optional[int] = None,
                factor: float = SCALE_FACTOR) -> list[int]:
    """Long sides from ``min_size`` to ``size``, growing by about ``factor`` (geometric, rounded).

    ``min_size`` of ``None``, or at least ``size``, gives the single scale ``[size]``.
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if min_size is None or min_size >= size:
        return [size]
    if min_size < 1:
        raise ValueError(f"min_size must be a positive number of pixels, got {min_size}")
    count = math.ceil(math.log(size / min_size) / math.log(factor) - 1e-9)
    sizes = [round(min_size * (size / min_size) ** (i / count)) for i in range(count + 1)]
    return sorted(set(sizes))


def scale_steps(scales: int, num_steps: int, coarse_steps: Optional[int] = None) -> list[int]:
    """Steps at each of ``scales`` scales: ``coarse_steps`` (default ``num_steps``) at each coarse
    scale, ``num_steps`` at the last."""
    coarse = num_steps if coarse_steps is None else coarse_steps
    if coarse < 0 or num_steps < 0:
        raise ValueError(f"steps must be >= 0, got {num_steps} and {coarse_steps} (coarse)")
    return [coarse] * (scales - 1) + [num_steps]


def upsample(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``image`` resized to ``height x width`` (bicubic), values kept in ``[0, 1]``."""
    if tuple(image.shape[-2:]) == (height, width):
        return image
    resized = F.interpolate(image, size=(height, width), mode="bicubic", align_corners=False,
                            antialias=height < image.shape[-2] or width < image.shape[-1])
    return resized.clamp(0, 1)
