"""Images in and out: any file Pillow reads as RGB, resizing, tensors, atomic saving, YIQ color.

Every image inside ``torchstyle`` is a float32 tensor ``(1, 3, H, W)`` in ``[0, 1]``.
Grayscale, RGBA/LA (alpha dropped), CMYK, palette and 16-bit files become RGB; 16-bit
grayscale keeps its 16-bit precision. Files are written to a temporary file in the target
folder, then renamed, so a crash never leaves half an image under the final name; ``bits=16``
writes 16 bits per channel to ``.png`` and ``.tif`` (Pillow holds 8-bit RGB only, so these two
are encoded here: PNG filter 0 rows, one uncompressed TIFF strip). Color control: luminance
statistics (``match_luminance``) and per-channel histogram matching (``match_histogram``).
"""
from __future__ import annotations

import logging
import os
import struct
import tempfile
import zlib
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
    "match_luminance", "with_chroma_of", "match_histogram", "SIXTEEN_BIT_FORMATS",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
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


def check_bits(path: PathLike, bits: int) -> None:
    """Refuse a bit depth other than 8 and 16, and 16 bits in a format that cannot hold them."""
    if bits not in (8, 16):
        raise ImageError(f"bits must be 8 or 16, got {bits}")
    if bits == 16 and image_format(path) not in SIXTEEN_BIT_FORMATS:
        raise ImageError(f"cannot write 16 bits per channel to {path}; use .png or .tif")


def _png16(pixels: np.ndarray) -> bytes:
    """A 16-bit RGB PNG of ``pixels`` (``H x W x 3`` uint16): IHDR, one IDAT, IEND."""
    height, width, _ = pixels.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = np.concatenate([np.zeros((height, 1), np.uint8),  # filter type 0 per row
                           pixels.astype(">u2").reshape(height, -1).view(np.uint8)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # 16 bits, truecolor
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def _tiff16(pixels: np.ndarray) -> bytes:
    """A 16-bit RGB baseline TIFF of ``pixels`` (little-endian, one uncompressed strip)."""
    height, width, _ = pixels.shape
    data = pixels.astype("<u2").tobytes()
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 3, None), (259, 3, 1, 1),
            (262, 3, 1, 2), (273, 4, 1, None), (277, 3, 1, 3), (278, 4, 1, height),
            (279, 4, 1, len(data)), (284, 3, 1, 1)]
    ifd_size = 2 + 12 * len(tags) + 4
    bits_at = 8 + ifd_size  # BitsPerSample's three values follow the IFD, then the strip
    strip_at = bits_at + 6
    entries = b""
    for tag, kind, count, value in tags:
        value = {258: bits_at, 273: strip_at}.get(tag, value)
        packed = struct.pack("<HHI", tag, kind, count)
        entries += packed + (struct.pack("<HH", value, 0) if kind == 3 and tag != 258
                             else struct.pack("<I", value))
    return (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + entries
            + struct.pack("<I", 0) + struct.pack("<HHH", 16, 16, 16) + data)


def save_image(image: Union[torch.Tensor, Image.Image], path: PathLike, bits: int = 8) -> Path:
    """Write ``image`` to ``path`` atomically (a temporary file in the same folder, then rename).

    ``bits=16`` keeps 16 bits per channel of a tensor (``.png`` or ``.tif`` only).
    """
    path = Path(path)
    fmt = image_format(path)
    check_bits(path, bits)
    if bits == 16:
        if not isinstance(image, torch.Tensor):
            image = image_to_tensor(image)
        pixels = image.detach().float().squeeze(0).clamp(0, 1).mul(65535).round()
        pixels = pixels.permute(1, 2, 0).cpu().numpy().astype(np.uint16)
        with atomic_write(path) as stream:
            stream.write(_png16(pixels) if fmt == "PNG" else _tiff16(pixels))
        return path
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

    Gatys et al. (2016), section 2: ``L_s' = σ_c / σ_s · (L_s − μ_s) + μ_c``. A batch of
    contents gives a batch of styles, each matched to its own content.
    """
    style_y, content_y = luminance(style), luminance(content)
    dims = (1, 2, 3)
    scale = content_y.std(dims, keepdim=True) / style_y.std(dims, keepdim=True).clamp_min(1e-6)
    return ((style_y - style_y.mean(dims, keepdim=True)) * scale
            + content_y.mean(dims, keepdim=True)).clamp(0, 1)


def with_chroma_of(image: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """``image``'s luminance combined with ``content``'s chroma (I and Q), clamped to ``[0, 1]``."""
    yiq = torch.cat([rgb_to_yiq(image)[:, :1], rgb_to_yiq(content)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def match_histogram(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``image`` with each channel's histogram made ``reference``'s (histogram specification).

    The ``k``-th smallest value of a channel becomes the reference channel's value at the same
    quantile (interpolated when the sizes differ), so the order of the pixels is kept and their
    distribution is the reference's. Per image for batches; ``reference`` may be one image.
    """
    batch, channels = image.shape[:2]
    source = image.reshape(batch, channels, -1)
    ordered = reference.reshape(reference.shape[0], channels, -1).sort(-1).values
    ordered = ordered.to(image.dtype).expand(batch, -1, -1)
    count, levels = source.shape[-1], ordered.shape[-1]
    where = torch.linspace(0, levels - 1, count, device=image.device, dtype=image.dtype)
    low = where.floor().long().clamp(max=levels - 1)
    high = (low + 1).clamp(max=levels - 1)
    frac = where - low.to(image.dtype)
    values = ordered[..., low] * (1 - frac) + ordered[..., high] * frac
    matched = torch.empty_like(source).scatter_(-1, source.argsort(-1), values)
    return matched.reshape(image.shape)
