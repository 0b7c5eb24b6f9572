"""Transforms for image features (``image/encoded``): decode, and decode with a random crop.

``DecodeImage`` turns encoded bytes into a ``uint8`` ``[channels, height, width]`` tensor with
``torchvision.io`` (libjpeg-turbo, libpng, ...), or on a CUDA device with nvJPEG, where a batch
(a list or a :class:`~loaders.tfrecord.batches.RaggedBytes`) is decoded in one call.

``RandomResizedCropJPEG`` is torchvision's ``RandomResizedCrop`` (same parameters, same random
draws from torch's generator) plus a random horizontal flip, that decodes only what the crop
needs, as TF's ``decode_and_crop_jpeg`` does: the crop is drawn from the size in the JPEG
header, and when the crop is at least twice the output size each way the JPEG is decoded at
1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling, through PIL's draft mode), which makes the
decode 2-6x cheaper; otherwise the whole image is decoded by torchvision. Use them as a
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

Encoded = Union[bytes, bytearray, memoryview, torch.Tensor]
_JPEG = b"\xff\xd8"
_REDUCTIONS = (8, 4, 2)  # libjpeg's DCT scaling factors, the largest first


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
    ``uint8`` RGB tensor ``[3, *size]``. ``reduced=False`` always decodes the whole image."""

    def __init__(self, size: Union[int, Sequence[int]], scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), flip: float = 0.5, reduced: bool = True) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale, self.ratio, self.flip, self.reduced = tuple(scale), tuple(ratio), flip, reduced
        self._decode = DecodeImage()

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
        shape = torch.empty(1).expand(3, full_height, full_width)  # get_params reads only the shape
        top, left, height, width = RandomResizedCrop.get_params(shape, list(self.scale), list(self.ratio))
        factor = self.reduction(height, width) if self.reduced and raw[:2] == _JPEG else 1
        if factor > 1:
            image = _decode_reduced(header or _open(raw), factor)
            scale_y, scale_x = image.shape[1] / full_height, image.shape[2] / full_width
            top, left = min(int(top * scale_y), image.shape[1] - 1), min(int(left * scale_x), image.shape[2] - 1)
            height = max(1, min(round(height * scale_y), image.shape[1] - top))
            width = max(1, min(round(width * scale_x), image.shape[2] - left))
        else:
            image = self._decode(raw)
        image = F.resized_crop(image, top, left, height, width, list(self.size),
                               interpolation=InterpolationMode.BILINEAR, antialias=True)
        if self.flip and torch.rand(()) < self.flip:
            image = image.flip(-1)
        return image.contiguous()

    def batch(self, datas: Union[Sequence[Encoded], RaggedBytes], device: Union[str, torch.device] = "cpu") -> torch.Tensor:
        """``[batch, 3, *size]``: each image cropped on the CPU, or on a CUDA ``device`` all of
        them decoded in one nvJPEG call, then cropped and flipped there."""
        device = torch.device(device)
        if device.type != "cuda":
            return torch.stack([self(data) for data in datas])
        images = DecodeImage(device=device)(list(datas))
        out = []
        for image in images:
            top, left, height, width = RandomResizedCrop.get_params(image, list(self.scale), list(self.ratio))
            image = F.resized_crop(image, top, left, height, width, list(self.size),
                                   interpolation=InterpolationMode.BILINEAR, antialias=True)
            out.append(image.flip(-1) if self.flip and torch.rand(()) < self.flip else image)
        return torch.stack(out)


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


__all__ = ["DecodeImage", "RandomResizedCropJPEG"]
