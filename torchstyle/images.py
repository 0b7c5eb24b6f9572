"""Images in and out: any file Pillow reads as RGB, resizing, tensors, atomic saving, YIQ color.

Every image inside ``torchstyle`` is a float32 tensor ``(1, 3, H, W)`` in ``[0, 1]``.
Grayscale, RGBA/LA (alpha dropped), CMYK, palette and 16-bit files become RGB; 16-bit
grayscale keeps its 16-bit precision. Files are written to a temporary file in the target
folder, then renamed, so a crash never leaves half an image under the final name.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from loaders.files import atomic_write

__all__ = [
    "ImageError", "load_image", "image_to_tensor", "tensor_to_image", "fit_size", "resize",
    "save_image",
    "image_format", "check_output_path", "rgb_to_yiq", "yiq_to_rgb", "luminance",
    "match_luminance", "with_chroma_of",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
# NTSC YIQ, the color space Gatys et al. (2016) use for luminance-only transfer.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.5959, -0.2746, -0.3213],
                            [0.2115, -0.5227, 0.3112]], dtype=torch.float64)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


class ImageError(ValueError):
    """An image file that is missing, unreadable, damaged, or cannot be written as asked."""


def load_image(path: PathLike) -> Image.Image:
    """Decode ``path`` fully (so truncation shows now) and apply its EXIF orientation."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not an image file" if path.is_dir() else "does not exist"
        raise ImageError(f"{path} {what}")
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path} is not an image file (Pillow cannot identify it)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path} is too large to decode safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{path} is damaged or truncated ({exc})") from exc


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image of any mode as a ``(1, 3, H, W)`` float tensor in ``[0, 1]``."""
    if image.mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(image).astype(np.float32) / 65535.0
        array = np.repeat(gray.clip(0.0, 1.0)[..., None], 3, axis=2)
    elif image.mode == "F":
        array = np.repeat(np.asarray(image, dtype=np.float32).clip(0.0, 1.0)[..., None], 3, axis=2)
    else:
        if image.mode in ("P", "PA"):
            image = image.convert("RGBA")  # a palette may carry transparency
        try:
            rgb = image.convert("RGB")
        except ValueError as exc:
            raise ImageError(
                f"cannot convert an image of mode {image.mode} to RGB ({exc})") from exc
        array = np.asarray(rgb, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_image(image: torch.Tensor) -> Image.Image:
    """A ``(1, 3, H, W)`` or ``(3, H, W)`` tensor in ``[0, 1]`` as an 8-bit RGB PIL image."""
    pixels = image.detach().float().squeeze(0).clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy())


def fit_size(height: int, width: int, size: int, min_side: int = 1) -> tuple[int, int]:
    """``(height, width)`` scaled so the long edge is ``size`` px, each side at least ``min_side``.

    A side that would fall under ``min_side`` (extreme aspect ratios) is raised to it, which
    stretches the image along that side; a warning says so.
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    if min(new_h, new_w) < min_side:
        logger.warning("a %dx%d image at size %d would be %dx%d px; stretching its short side to "
                       "%d px, the least VGG-19 can use",
                       width, height, size, new_w, new_h, min_side)
        new_h, new_w = max(new_h, min_side), max(new_w, min_side)
    return new_h, new_w


def resize(image: torch.Tensor, size: int, min_side: int = 1) -> torch.Tensor:
    """Scale ``(1, 3, H, W)`` to :func:`fit_size` (bicubic, antialiased), values kept in [0, 1]."""
    height, width = image.shape[-2:]
    new_h, new_w = fit_size(height, width, size, min_side)
    if (new_h, new_w) == (height, width):
        return image
    resized = F.interpolate(image, size=(new_h, new_w), mode="bicubic", align_corners=False,
                            antialias=True)
    return resized.clamp(0, 1)


def image_format(path: PathLike) -> str:
    """The Pillow format that writes ``path``'s extension (``.png`` -> ``PNG``), or an error."""
    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise ImageError(f"cannot write {path}: unknown image extension {suffix or '(none)'!r}; "
                         f"use .png, .jpg, .webp, .tif or .bmp")
    return fmt


def check_output_path(output: PathLike, inputs: Iterable[PathLike] = ()) -> Path:
    """Refuse an output whose folder is missing, whose format is unknown, or that is an input."""
    output = Path(output)
    if output.is_dir():
        raise ImageError(
            f"output {output} is a folder; give a file name such as {output / 'out.png'}")
    image_format(output)
    folder = output.parent
    if not folder.is_dir():
        raise ImageError(f"output folder {folder} does not exist; create it first")
    try:  # the real test of writability (os.access says yes to root on read-only mounts)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise ImageError(f"output folder {folder} is not writable ({exc.strerror})") from None
    for source in inputs:
        if Path(source).resolve() == output.resolve():
            raise ImageError(f"output {output} is also an input image; choose another name")
    return output


def save_image(image: Union[torch.Tensor, Image.Image], path: PathLike) -> Path:
    """Write ``image`` to ``path`` atomically (a temporary file in the same folder, then rename)."""
    path = Path(path)
    fmt = image_format(path)
    if isinstance(image, torch.Tensor):
        image = tensor_to_image(image)
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    with atomic_write(path) as stream:
        image.save(stream, format=fmt, **options)
    return path


def _mix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 color matrix to the channels of ``(B, 3, H, W)``."""
    return torch.einsum("ij,bjhw->bihw", matrix.to(image.device, image.dtype), image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """RGB ``(B, 3, H, W)`` to YIQ: channel 0 is luminance, 1 and 2 are chroma."""
    return _mix(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """YIQ ``(B, 3, H, W)`` back to RGB (the exact inverse of :func:`rgb_to_yiq`)."""
    return _mix(_YIQ_TO_RGB, image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """The image's luminance Y as a gray RGB image ``(B, 3, H, W)``."""
    return rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Gray style image whose luminance has the content's mean and standard deviation.

    Gatys et al. (2016), section 2: ``L_s' = σ_c / σ_s · (L_s − μ_s) + μ_c``.
    """
    style_y, content_y = luminance(style), luminance(content)
    scale = content_y.std() / style_y.std().clamp_min(1e-6)
    return ((style_y - style_y.mean()) * scale + content_y.mean()).clamp(0, 1)


def with_chroma_of(image: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """``image``'s luminance combined with ``content``'s chroma (I and Q), clamped to ``[0, 1]``."""
    yiq = torch.cat([rgb_to_yiq(image)[:, :1], rgb_to_yiq(content)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)
