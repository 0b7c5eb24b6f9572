"""Transforms for image features (``image/encoded``): decode, decode a crop window, and decode with a random crop.

``DecodeImage`` turns encoded bytes into a ``uint8`` ``[channels, height, width]`` tensor with
``torchvision.io`` (libjpeg-turbo, libpng, ...), or on a CUDA device with nvJPEG, where a batch
(a list or a :class:`~loaders.tfrecord.batches.RaggedBytes`) is decoded in one call.

``decode_and_crop_jpeg`` is TF's ``tf.io.decode_and_crop_jpeg``: it decodes only a crop window
of a JPEG with libjpeg-turbo's partial decoding (``_jpeg.c``, an optional C extension: the rows
above the window are skipped, decoding stops after its last row, and only the iMCU columns that
hold it are decoded), optionally at 1/2, 1/4 or 1/8 scale, with TF's pixels.

``RandomResizedCropJPEG`` is torchvision's ``RandomResizedCrop`` (same parameters, same random
draws from torch's generator; or TF's ``sample_distorted_bounding_box``, fast IDCT and aliased
resize, its default training input) plus a random horizontal flip, that decodes only what the crop
needs: the crop is drawn from the size in the JPEG header, and when the crop is at least twice
the output size each way the JPEG is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT
scaling), which makes the decode 2-6x cheaper. With the C extension only the crop window is
decoded, its pixels those of torchvision's whole-image decode at the same scale; without it the
whole image is decoded, reduced through PIL's draft mode, else by torchvision. Use them as a
dataset's ``transform``::

    crop = RandomResizedCropJPEG(224)
    def train(example):
        return crop(example["image/encoded"]), example["image/class/label"]
    TFRecordDataset("train-*", features, transform=train)
"""
from __future__ import annotations

import io
import math
import warnings
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms.v2 import functional as F

from loaders.errors import InvalidArgumentError
from loaders.tfrecord.batches import RaggedBytes

try:
    from loaders.tfrecord import _jpeg
except ImportError:  # built without a compiler or libjpeg's headers: whole images are decoded
    _jpeg = None

Encoded = Union[bytes, bytearray, memoryview, torch.Tensor]
_JPEG = b"\xff\xd8"
_REDUCTIONS = (8, 4, 2)  # libjpeg's DCT scaling factors, the largest first
_FAST_DCT = {"": False, "INTEGER_ACCURATE": False, "INTEGER_FAST": True}


def _as_tensor(data: Encoded) -> torch.Tensor:
    """The encoded bytes as the 1-D uint8 CPU tensor torchvision's decoders read."""
    if isinstance(data, torch.Tensor):
        return data.cpu()
    if not len(data):
        raise InvalidArgumentError("not a decodable image: the encoded data is empty")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


class DecodeImage:
    """Decode encoded images (JPEG, PNG, GIF, WebP) to ``uint8`` ``[channels, H, W]`` tensors, RGB
    by default (``mode``: a torchvision ``ImageReadMode``). ``device="cuda"`` decodes JPEGs with
    nvJPEG on the GPU; a list or ``RaggedBytes`` of images is then decoded in one batched call."""

    def __init__(self, mode: ImageReadMode = ImageReadMode.RGB, device: Union[str, torch.device] = "cpu") -> None:
        self.mode, self.device = mode, torch.device(device)

    def __call__(self, data: Union[Encoded, Sequence[Encoded], RaggedBytes]) -> Any:
        batch = isinstance(data, (list, tuple, RaggedBytes))
        items = [_as_tensor(item) for item in data] if batch else [_as_tensor(data)]
        try:
            if self.device.type == "cuda":
                images = decode_jpeg(items, mode=self.mode, device=self.device)
            else:
                images = [decode_image(item, mode=self.mode) for item in items]
        except RuntimeError as exc:
            raise InvalidArgumentError(f"not a decodable image: {exc}") from None
        return images if batch else images[0]


class RandomResizedCropJPEG:
    """``RandomResizedCrop(size, scale, ratio)`` and a horizontal flip with probability ``flip``,
    decoding an encoded image only as far as the crop needs (see the module's text): a
    ``uint8`` RGB tensor ``[3, *size]``. ``reduced=False`` decodes at full size, ``partial=False``
    decodes the whole image even where the C extension could decode the crop window alone.
    ``antialias`` is torchvision's; ``antialias=False`` with ``dct_method="INTEGER_FAST"`` (the
    window decode's, as ``decode_and_crop_jpeg``'s) is what TF's ``decode_and_crop_jpeg`` and
    ``tf.image.resize`` do by default, cheaper and aliased. ``sampler="tensorflow"`` draws the crop
    as TF's ``sample_distorted_bounding_box`` (no boxes) does instead of torchvision's way: its
    distribution, from torch's generator; smaller crops on average."""

    def __init__(self, size: Union[int, Sequence[int]], scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), flip: float = 0.5, reduced: bool = True,
                 partial: bool = True, antialias: bool = True, dct_method: str = "",
                 sampler: str = "torchvision") -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale, self.ratio, self.flip, self.reduced = tuple(scale), tuple(ratio), flip, reduced
        self.partial = partial and _jpeg is not None
        if dct_method not in _FAST_DCT:
            raise ValueError(f"dct_method must be one of {sorted(_FAST_DCT)}, not {dct_method!r}")
        self.antialias, self.fast = antialias, _FAST_DCT[dct_method]
        if self.fast and not self.partial:
            raise ValueError("dct_method='INTEGER_FAST' needs the crop window decoded by the _jpeg extension "
                             f"(partial={partial}, extension {'built' if _jpeg else 'not built'})")
        if sampler not in _SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(_SAMPLERS)}, not {sampler!r}")
        if sampler == "tensorflow" and not (all(0 < value <= 1 for value in self.scale) and min(self.ratio) > 0):
            raise ValueError(f"sampler='tensorflow' takes scale (TF's area_range) in (0, 1] and ratio "
                             f"(aspect_ratio_range) above 0, as sample_distorted_bounding_box: not {self.scale}, {self.ratio}")
        self._sample = _SAMPLERS[sampler]
        self._decode = DecodeImage()

    def window(self, height: int, width: int) -> tuple[int, int, int, int]:
        """A random crop ``(top, left, height, width)`` of an image of ``height`` x ``width``, drawn by the sampler."""
        return self._sample(height, width, self.scale, self.ratio)

    def reduction(self, crop_height: int, crop_width: int) -> int:
        """The DCT scaling the crop allows: the largest of 8, 4, 2 that leaves it at least the output size, else 1."""
        for factor in _REDUCTIONS:
            if crop_height // factor >= self.size[0] and crop_width // factor >= self.size[1]:
                return factor
        return 1

    def __call__(self, data: Encoded) -> torch.Tensor:
        raw = bytes(data.numpy()) if isinstance(data, torch.Tensor) else data
        size = _jpeg_size(raw)
        header = None
        if size is None:  # not a JPEG (or an unusual one): PIL reads the header
            header = _open(raw)
            size = header.size
        full_width, full_height = size
        top, left, height, width = self.window(full_height, full_width)
        jpeg = raw[:2] == _JPEG
        factor = self.reduction(height, width) if self.reduced and jpeg else 1
        if self.partial and jpeg:  # the window alone, scaled by libjpeg (the default IDCT gives torchvision's pixels)
            scaled = (-(-full_height // factor), -(-full_width // factor))  # libjpeg rounds up
            window = _scale_window((top, left, height, width), (full_height, full_width), scaled)
            image = _decode_window(raw, window, factor, 3, fast=self.fast, context=True).permute(2, 0, 1)
            top, left, height, width = 0, 0, window[2], window[3]
        elif factor > 1:
            image = _decode_reduced(header or _open(raw), factor)
            top, left, height, width = _scale_window((top, left, height, width), (full_height, full_width),
                                                     tuple(image.shape[1:]))
        else:
            image = self._decode(raw)
        return _planar(self._resized(image, top, left, height, width), bool(self.flip and torch.rand(()) < self.flip))

    def _resized(self, image: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
        """The crop window of ``image`` resized to ``size`` (bilinear, antialiased unless ``antialias=False``)."""
        return F.resized_crop(image, top, left, height, width, list(self.size),
                              interpolation=InterpolationMode.BILINEAR, antialias=self.antialias)

    def batch(self, datas: Union[Sequence[Encoded], RaggedBytes], device: Union[str, torch.device] = "cpu") -> torch.Tensor:
        """``[batch, 3, *size]``: each image cropped on the CPU, or on a CUDA ``device`` all of
        them decoded in one nvJPEG call (its own IDCT, whatever ``dct_method``), then cropped and flipped there."""
        device = torch.device(device)
        if device.type != "cuda":
            return torch.stack([self(data) for data in datas])
        images = DecodeImage(device=device)(list(datas))
        out = []
        for image in images:
            image = self._resized(image, *self.window(image.shape[-2], image.shape[-1]))
            out.append(image.flip(-1) if self.flip and torch.rand(()) < self.flip else image)
        return torch.stack(out)


def _torchvision_window(height: int, width: int, scale: Sequence[float], ratio: Sequence[float]) -> tuple:
    """torchvision's ``RandomResizedCrop.get_params`` (its draws from torch's generator)."""
    shape = torch.empty(1).expand(3, height, width)  # get_params reads only the shape
    return tuple(RandomResizedCrop.get_params(shape, list(scale), list(ratio)))


def _tensorflow_window(height: int, width: int, scale: Sequence[float], ratio: Sequence[float],
                       attempts: int = 10) -> tuple:
    """TF's ``sample_distorted_bounding_box`` without boxes (``area_range=scale``,
    ``aspect_ratio_range=ratio``, ``max_attempts``), drawing from torch's generator: an aspect
    ratio uniform in ``ratio``, a height uniform among those whose area fits ``scale``, the whole
    image when ``attempts`` draws fail (``sample_distorted_bounding_box_op.cc``'s rounding)."""
    min_area, max_area = scale[0] * width * height, scale[1] * width * height
    for _ in range(attempts):
        aspect = float(torch.empty(()).uniform_(ratio[0], ratio[1]))
        if min_area > max_area:  # no crop is drawn (TF's GenerateRandomCrop fails every attempt)
            break
        crop_height, max_height = round(math.sqrt(min_area / aspect)), round(math.sqrt(max_area / aspect))
        if round(max_height * aspect) > width:  # the tallest crop whose rounded width fits
            max_height = int((width + 0.5 - 1e-7) / aspect)
            if round(max_height * aspect) > width:
                max_height -= 1
        max_height = min(max_height, height)
        crop_height = min(crop_height, max_height)
        if crop_height < max_height:
            crop_height += int(torch.randint(0, max_height - crop_height + 1, ()))
        crop_width = round(crop_height * aspect)
        area = crop_width * crop_height
        if area < min_area:  # rounding: a slightly larger crop, then a slightly smaller one
            crop_height += 1
            crop_width = round(crop_height * aspect)
            area = crop_width * crop_height
        if area > max_area:
            crop_height -= 1
            crop_width = round(crop_height * aspect)
            area = crop_width * crop_height
        if min_area <= area <= max_area and 0 < crop_width <= width and 0 < crop_height <= height:
            top = int(torch.randint(0, height - crop_height, ())) if crop_height < height else 0
            left = int(torch.randint(0, width - crop_width, ())) if crop_width < width else 0
            return top, left, crop_height, crop_width
    return 0, 0, height, width


_SAMPLERS = {"torchvision": _torchvision_window, "tensorflow": _tensorflow_window}


def decode_and_crop_jpeg(contents: Encoded, crop_window: Sequence[int], channels: int = 3, ratio: int = 1,
                         dct_method: str = "") -> torch.Tensor:
    """TF's ``tf.io.decode_and_crop_jpeg``: the ``crop_window`` ``[y, x, height, width]`` of a JPEG
    (in the pixels of the image scaled by 1/``ratio``: 1, 2, 4 or 8), decoding only that window,
    as a ``uint8`` ``[channels, height, width]`` tensor: RGB (3) or luminance (1). ``dct_method``:
    ``"INTEGER_FAST"`` (TF's default for ``""``) or ``"INTEGER_ACCURATE"`` (ours for ``""``, as
    torchvision decodes). Bad data or a window outside the image raise ``InvalidArgumentError``."""
    raw = bytes(contents.numpy()) if isinstance(contents, torch.Tensor) else contents
    window = tuple(int(v) for v in crop_window)
    if len(window) != 4:
        raise InvalidArgumentError(f"crop_window must be [y, x, height, width], not {list(crop_window)}")
    if channels not in (1, 3) or ratio not in (1, 2, 4, 8) or dct_method not in _FAST_DCT:
        raise InvalidArgumentError(f"channels must be 1 or 3 (not {channels}), ratio 1, 2, 4 or 8 (not {ratio}), "
                                   f"dct_method one of {sorted(_FAST_DCT)} (not {dct_method!r})")
    if _jpeg is not None:
        return _planar(_decode_window(raw, window, ratio, channels, fast=_FAST_DCT[dct_method],
                                      context=False).permute(2, 0, 1), False)
    header = _open(raw)  # no C extension: PIL decodes the whole image (scaled by draft mode), then crops
    if header.format != "JPEG":
        raise InvalidArgumentError(f"not a decodable JPEG: a {header.format} image")
    mode = "RGB" if channels == 3 else "L"
    header.draft(mode, (-(-header.size[0] // ratio), -(-header.size[1] // ratio)))
    try:
        pixels = np.asarray(header.convert(mode)).reshape(header.size[1], header.size[0], channels)
    except OSError as exc:
        raise InvalidArgumentError(f"not a decodable JPEG: {exc}") from None
    y, x, height, width = window
    if height <= 0 or width <= 0 or y < 0 or x < 0 or y + height > pixels.shape[0] or x + width > pixels.shape[1]:
        raise InvalidArgumentError(f"the crop window (y={y}, x={x}, height={height}, width={width}) is not inside the "
                                   f"{pixels.shape[0]}x{pixels.shape[1]} image (height x width)")
    return torch.from_numpy(pixels[y:y + height, x:x + width].transpose(2, 0, 1).copy())


def _decode_window(raw: Any, window: Sequence[int], factor: int, channels: int, fast: bool,
                   context: bool) -> torch.Tensor:
    """A JPEG's crop window ``(y, x, height, width)`` of the image scaled by 1/``factor``, decoded
    by ``_jpeg.c``: a ``[height, width, channels]`` uint8 tensor (see ``_jpeg.c`` for ``context``)."""
    if not len(raw):
        raise InvalidArgumentError("not a decodable JPEG: the encoded data is empty")
    try:
        pixels = _jpeg.decode(raw, *window, factor, channels, fast, context)
    except ValueError as exc:
        raise InvalidArgumentError(str(exc)) from None
    return torch.frombuffer(pixels, dtype=torch.uint8).view(window[2], window[3], channels)


def _planar(image: torch.Tensor, flip: bool) -> torch.Tensor:
    """``image`` ``[C, H, W]`` as a contiguous tensor, its columns reversed when ``flip``. An RGB
    image laid out channels last (a crop window's decode, and its resize) is turned into planes
    by ``_jpeg.c`` in one pass, 5-10x torch's strided copy."""
    hwc = image.permute(1, 2, 0)
    if _jpeg is None or image.dtype != torch.uint8 or image.shape[0] != 3 or not hwc.is_contiguous():
        return (image.flip(-1) if flip else image).contiguous()
    out = torch.empty(image.shape, dtype=torch.uint8)
    _jpeg.planar(hwc.numpy(), out.numpy(), image.shape[1], image.shape[2], flip)
    return out


def _scale_window(window: Sequence[int], full: Sequence[int], scaled: Sequence[int]) -> tuple[int, int, int, int]:
    """A crop window ``(top, left, height, width)`` of an image of size ``full`` (height, width)
    moved to the same image decoded at size ``scaled``, kept inside it and at least one pixel."""
    top, left, height, width = window
    scale_y, scale_x = scaled[0] / full[0], scaled[1] / full[1]
    top, left = min(int(top * scale_y), scaled[0] - 1), min(int(left * scale_x), scaled[1] - 1)
    return (top, left, max(1, min(round(height * scale_y), scaled[0] - top)),
            max(1, min(round(width * scale_x), scaled[1] - left)))


def _open(raw: Any) -> Image.Image:
    """The image, its header read (PIL decodes nothing yet)."""
    try:
        return Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidArgumentError(f"not a decodable image: {exc}") from None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(raw: Any) -> Optional[tuple[int, int]]:
    """``(width, height)`` from a JPEG's frame header (walking the marker segments), None when
    ``raw`` is not a JPEG whose header is found that way."""
    if bytes(raw[:2]) != _JPEG:
        return None
    position, end = 2, len(raw)
    while position + 9 <= end and raw[position] == 0xFF:
        marker = raw[position + 1]
        if marker in _SOF:
            height, width = int.from_bytes(raw[position + 5:position + 7], "big"), int.from_bytes(raw[position + 7:position + 9], "big")
            return (width, height) if width and height else None
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        position += 2 + int.from_bytes(raw[position + 2:position + 4], "big")
    return None


def _decode_reduced(header: Image.Image, factor: int) -> torch.Tensor:
    """A JPEG decoded at 1/``factor`` of its size (libjpeg's DCT scaling), as a ``[3, H, W]``
    view of PIL's pixel rows (torch resizes that channels-last layout fastest)."""
    width, height = header.size
    header.draft("RGB", (math.ceil(width / factor), math.ceil(height / factor)))
    try:
        image = header.convert("RGB")
    except OSError as exc:
        raise InvalidArgumentError(f"not a decodable image: {exc}") from None
    with warnings.catch_warnings():  # PIL's pixels are read-only; they are only read
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(image)).permute(2, 0, 1)


__all__ = ["DecodeImage", "RandomResizedCropJPEG", "decode_and_crop_jpeg"]
