"""Image feature transforms: DecodeImage and RandomResizedCropJPEG (reduced-size decoding where the crop allows)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import decode_jpeg
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms.v2 import functional as F

from loaders.errors import InvalidArgumentError
from loaders.tfrecord import DecodeImage, RaggedBytes, RandomResizedCropJPEG
from loaders.tfrecord.images import _jpeg, _jpeg_size, _planar


def picture(width: int, height: int, kind: str = "JPEG", **options) -> bytes:
    """A smooth RGB gradient (so that decoders at different scales agree closely), encoded."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], axis=-1).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, kind, quality=95, **options)
    return out.getvalue()


def test_decode_image_gives_uint8_rgb_tensors_one_or_a_batch():
    jpeg, png = picture(64, 48), picture(30, 20, "PNG")
    image = DecodeImage()(jpeg)
    assert image.dtype == torch.uint8 and image.shape == (3, 48, 64)
    assert torch.equal(image, decode_jpeg(torch.frombuffer(bytearray(jpeg), dtype=torch.uint8)))
    assert DecodeImage()(png).shape == (3, 20, 30)
    both = DecodeImage()(RaggedBytes.from_rows([jpeg, png]))
    assert [tuple(i.shape) for i in both] == [(3, 48, 64), (3, 20, 30)]
    with pytest.raises(InvalidArgumentError, match="not a decodable image"):
        DecodeImage()(b"not an image")
    with pytest.raises(InvalidArgumentError, match="the encoded data is empty"):
        DecodeImage()(b"")


def test_random_resized_crop_draws_as_torchvision_does():
    jpeg = picture(200, 150)
    crop = RandomResizedCropJPEG(32, flip=0, reduced=False)
    torch.manual_seed(7)
    ours = crop(jpeg)
    torch.manual_seed(7)
    full = decode_jpeg(torch.frombuffer(bytearray(jpeg), dtype=torch.uint8))
    top, left, height, width = RandomResizedCrop.get_params(full, [0.08, 1.0], [3 / 4, 4 / 3])
    theirs = F.resized_crop(full, top, left, height, width, [32, 32], interpolation=InterpolationMode.BILINEAR,
                            antialias=True)
    assert ours.shape == (3, 32, 32) and ours.dtype == torch.uint8 and ours.is_contiguous()
    assert torch.equal(ours, theirs)
    progressive = picture(90, 70, progressive=True)  # another frame marker (SOF2)
    assert _jpeg_size(progressive) == (90, 70) and _jpeg_size(picture(9, 7, "PNG")) is None


def test_reduced_decoding_where_the_crop_allows_and_close_to_the_full_decode():
    crop = RandomResizedCropJPEG((40, 50), scale=(0.9, 1.0))
    assert [crop.reduction(h, w) for h, w in [(320, 400), (160, 200), (80, 100), (79, 400), (39, 49)]] == [8, 4, 2, 1, 1]
    jpeg = picture(800, 640)
    for seed in range(4):
        torch.manual_seed(seed)
        reduced = crop(jpeg)
        torch.manual_seed(seed)
        full = RandomResizedCropJPEG((40, 50), scale=(0.9, 1.0), reduced=False)(jpeg)
        assert reduced.shape == full.shape == (3, 40, 50)
        assert (reduced.float() - full.float()).abs().mean() < 2  # the same picture, decoded at 1/8 or 1/1


def test_flip_and_bad_input():
    jpeg = picture(100, 80)
    torch.manual_seed(0)
    flipped = RandomResizedCropJPEG(16, scale=(1.0, 1.0), ratio=(1.25, 1.25), flip=1.0)(jpeg)
    kept = RandomResizedCropJPEG(16, scale=(1.0, 1.0), ratio=(1.25, 1.25), flip=0.0)(jpeg)
    assert torch.equal(flipped, kept.flip(-1))
    assert RandomResizedCropJPEG(16)(picture(40, 30, "PNG")).shape == (3, 16, 16)
    with pytest.raises(InvalidArgumentError, match="not a decodable image"):
        RandomResizedCropJPEG(16)(b"\xff\xd8 not really a jpeg")
    batch = RandomResizedCropJPEG(16).batch([jpeg, jpeg, jpeg])
    assert batch.shape == (3, 3, 16, 16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="nvJPEG decoding needs CUDA")
def test_cuda_decoding_matches_the_cpu():
    jpegs = [picture(64, 48), picture(120, 90)]
    on_gpu = DecodeImage(device="cuda")(jpegs)
    assert all(image.is_cuda for image in on_gpu)
    for gpu, jpeg in zip(on_gpu, jpegs):
        cpu = DecodeImage()(jpeg)
        assert gpu.shape == cpu.shape and (gpu.cpu().float() - cpu.float()).abs().mean() < 2
    batch = RandomResizedCropJPEG(24).batch(RaggedBytes.from_rows(jpegs), device="cuda")
    assert batch.is_cuda and batch.shape == (2, 3, 24, 24) and batch.dtype == torch.uint8


@pytest.mark.skipif(_jpeg is None, reason="needs the _jpeg C extension")
def test_rgb_pixels_laid_out_channels_last_become_planes_as_torch_copies_them():
    generator = torch.Generator().manual_seed(3)
    for height, width in [(1, 1), (2, 31), (5, 33), (224, 224), (3, 1000)]:  # the vector loops' tails
        hwc = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=generator)
        for flip in (False, True):
            ours = _planar(hwc.permute(2, 0, 1), flip)
            theirs = hwc.permute(2, 0, 1).flip(-1) if flip else hwc.permute(2, 0, 1)
            assert ours.is_contiguous() and torch.equal(ours, theirs)
    gray = torch.randint(0, 256, (4, 6, 1), dtype=torch.uint8, generator=generator).permute(2, 0, 1)
    assert torch.equal(_planar(gray, True), gray.flip(-1))  # not RGB: torch's copy
    with pytest.raises(ValueError, match="buffers of 12 and 12 bytes for 2 x 3 RGB pixels"):
        _jpeg.planar(bytes(12), bytearray(12), 2, 3, False)
