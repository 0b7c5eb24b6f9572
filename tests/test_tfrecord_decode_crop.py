"""decode_and_crop_jpeg (libjpeg-turbo's partial decoding, _jpeg.c): the pixels of TensorFlow's
tf.io.decode_and_crop_jpeg (its own interpreter, as the oracle runs it), of torchvision's whole-image
decode, and its errors; RandomResizedCropJPEG through it."""
from __future__ import annotations

import io
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from loaders.errors import InvalidArgumentError
from loaders.tfrecord import RandomResizedCropJPEG, decode_and_crop_jpeg
from loaders.tfrecord import images

sys.path.insert(0, str(Path(__file__).resolve().parent / "tf_oracle"))

from tf_interpreter import run_tensorflow  # noqa: E402

needs_extension = pytest.mark.skipif(images._jpeg is None, reason="the _jpeg C extension is not built (no libjpeg headers)")


def photo(width: int, height: int, mode: str = "RGB", seed: int = 0, **options) -> bytes:
    """A noisy gradient (so that chroma upsampling and IDCT differences show), JPEG-encoded."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + 2 * y) % 256], -1) // 2 + rng.integers(0, 128, (height, width, 3))
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).convert(mode).save(out, "JPEG", quality=90, **options)
    return out.getvalue()


JPEGS = {
    "4:2:0": photo(333, 251, subsampling=2),
    "4:4:4": photo(197, 161, subsampling=0, seed=1),
    "4:2:2": photo(130, 97, subsampling=1, seed=2),
    "grayscale": photo(101, 77, "L", seed=3),
    "progressive 4:2:0": photo(300, 203, subsampling=2, progressive=True, seed=4),
    "CMYK": photo(120, 90, "CMYK", seed=5),
}


def windows(height: int, width: int) -> list[list[int]]:
    """Crop windows [y, x, h, w]: the whole image, odd offsets, an iMCU-aligned x, the last pixels, one pixel."""
    return [[0, 0, height, width], [1, 1, height - 1, width - 1], [17, 13, height // 3, width // 2 - 7],
            [5, 16, height // 4, 32], [height - 3, width - 5, 3, 5], [33, 8, 1, 1], [0, 31, height, 1]]


def size(jpeg: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(jpeg)).size[::-1]


# (JPEG, window, channels, ratio, our dct_method, TF's dct_method): TF's "" is INTEGER_FAST, ours INTEGER_ACCURATE.
CASES = [(name, window, 3, 1, "INTEGER_ACCURATE", "INTEGER_ACCURATE") for name, jpeg in JPEGS.items()
         for window in windows(*size(jpeg))]
CASES += [(name, window, 1, 1, "", "INTEGER_ACCURATE") for name in ("4:2:0", "grayscale") for window in windows(*size(JPEGS[name]))]
CASES += [("4:2:0", [3, 9, 40, 50], 3, 1, "INTEGER_FAST", ""), ("4:4:4", [0, 0, 161, 197], 3, 1, "INTEGER_FAST", "")]
CASES += [(name, window, 3, ratio, "INTEGER_ACCURATE", "INTEGER_ACCURATE") for name in ("4:2:0", "4:4:4", "progressive 4:2:0")
          for ratio in (2, 4, 8) for window in windows(*(-(-side // ratio) for side in size(JPEGS[name])))
          if window[2] > 0 and window[3] > 0 and window[0] + window[2] <= -(-size(JPEGS[name])[0] // ratio)
          and window[1] + window[3] <= -(-size(JPEGS[name])[1] // ratio)]
TENSORFLOW_SIDE = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf
work = sys.argv[1]
for number, (name, window, channels, ratio, _, dct) in enumerate(json.load(open(os.path.join(work, "cases.json")))):
    data = open(os.path.join(work, name + ".jpg"), "rb").read()
    image = tf.io.decode_and_crop_jpeg(data, window, channels=channels, ratio=ratio, dct_method=dct)
    np.save(os.path.join(work, f"{number}.npy"), image.numpy())
"""


@pytest.fixture(scope="module")
def tensorflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding TensorFlow's decode_and_crop_jpeg of each case (one run of its interpreter)."""
    work = tmp_path_factory.mktemp("decode_crop")
    for name, jpeg in JPEGS.items():
        (work / f"{name}.jpg").write_bytes(jpeg)
    (work / "cases.json").write_text(json.dumps(CASES))
    run_tensorflow(TENSORFLOW_SIDE, work)
    return work


@needs_extension
def test_pixels_are_tensorflows(tensorflow):
    for number, (name, window, channels, ratio, dct, _) in enumerate(CASES):
        ours = decode_and_crop_jpeg(JPEGS[name], window, channels=channels, ratio=ratio, dct_method=dct)
        theirs = torch.from_numpy(np.load(tensorflow / f"{number}.npy")).permute(2, 0, 1)
        assert ours.shape == theirs.shape == (channels, window[2], window[3]), (name, window, ratio)
        assert torch.equal(ours, theirs), (name, window, channels, ratio, dct)


def whole(jpeg: bytes, mode: ImageReadMode = ImageReadMode.RGB) -> torch.Tensor:
    return decode_jpeg(torch.frombuffer(bytearray(jpeg), dtype=torch.uint8), mode=mode)


@needs_extension
@pytest.mark.parametrize("name", JPEGS)
def test_pixels_are_torchvisions_but_at_subsampled_window_edges(name):
    """As in TF, libjpeg's fancy upsampler sees no chroma past the decoded iMCU columns, so where chroma
    is subsampled the window's first and last columns can differ from a whole-image decode; with a pixel
    of context each side (RandomResizedCropJPEG's decode) every pixel is torchvision's."""
    jpeg, full = JPEGS[name], whole(JPEGS[name])
    subsampled = name not in ("4:4:4", "grayscale")
    for y, x, h, w in windows(*size(jpeg)):
        expected = full[:, y:y + h, x:x + w]
        ours = decode_and_crop_jpeg(jpeg, [y, x, h, w])
        assert ours.is_contiguous() and ours.dtype == torch.uint8
        if subsampled:
            assert torch.equal(ours[:, :, 1:-1], expected[:, :, 1:-1]), (name, y, x, h, w)
            assert (ours.int() - expected.int()).abs().max() <= 32
        else:
            assert torch.equal(ours, expected), (name, y, x, h, w)
        assert torch.equal(images._decode_window(jpeg, (y, x, h, w), 1, 3, fast=False, context=True).permute(2, 0, 1),
                           expected), (name, y, x, h, w)
    gray = whole(jpeg, ImageReadMode.GRAY) if name != "CMYK" else None
    if gray is not None:
        assert torch.equal(decode_and_crop_jpeg(jpeg, [2, 3, 20, 30], channels=1)[:, :, 1:-1], gray[:, 2:22, 4:32])


@needs_extension
def test_scaled_windows_are_windows_of_the_scaled_image():
    jpeg = JPEGS["4:2:0"]
    for ratio in (2, 4, 8):
        height, width = (-(-side // ratio) for side in size(jpeg))
        scaled = decode_and_crop_jpeg(jpeg, [0, 0, height, width], ratio=ratio)
        assert scaled.shape == (3, height, width)
        window = images._decode_window(jpeg, (3, 5, height // 2, width // 3), ratio, 3, fast=False, context=True)
        assert torch.equal(window.permute(2, 0, 1), scaled[:, 3:3 + height // 2, 5:5 + width // 3])


@needs_extension
def test_threads_decode_at_once_with_the_same_pixels():
    jobs = [(name, window) for name in JPEGS for window in windows(*size(JPEGS[name]))] * 3
    serial = [decode_and_crop_jpeg(JPEGS[name], window) for name, window in jobs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda job: decode_and_crop_jpeg(JPEGS[job[0]], job[1]), jobs))
    assert all(torch.equal(a, b) for a, b in zip(serial, threaded))


def test_bad_input_is_an_invalid_argument():
    jpeg = JPEGS["4:2:0"]
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    for data, message in [(b"not a jpeg at all", "not a decodable"), (png.getvalue(), "not a decodable JPEG"),
                          (b"", "not a decodable"), (jpeg[:len(jpeg) // 2], "not a decodable JPEG"),
                          (jpeg[:120], "not a decodable JPEG")]:
        with pytest.raises(InvalidArgumentError, match=message):
            decode_and_crop_jpeg(data, [0, 0, 10, 10] if len(data) < 200 else [0, 0, 251, 333])
    for window in ([0, 0, 252, 333], [0, 300, 10, 34], [-1, 0, 5, 5], [0, 0, 0, 5], [10, 10, 5, -1]):
        with pytest.raises(InvalidArgumentError, match=r"crop window .* is not inside the 251x333 image"):
            decode_and_crop_jpeg(jpeg, window)
    with pytest.raises(InvalidArgumentError, match=r"is not inside the 126x167 image"):
        decode_and_crop_jpeg(jpeg, [0, 0, 127, 10], ratio=2)
    with pytest.raises(InvalidArgumentError, match=r"crop_window must be \[y, x, height, width\]"):
        decode_and_crop_jpeg(jpeg, [0, 0, 10])
    for options in ({"channels": 4}, {"ratio": 3}, {"dct_method": "FLOAT"}):
        with pytest.raises(InvalidArgumentError, match="channels must be 1 or 3"):
            decode_and_crop_jpeg(jpeg, [0, 0, 10, 10], **options)
    assert decode_and_crop_jpeg(jpeg[:len(jpeg) // 2], [0, 0, 20, 333]).shape == (3, 20, 333)  # the rows it has


def test_without_the_extension_whole_images_are_decoded(monkeypatch):
    jpeg = JPEGS["4:4:4"]
    monkeypatch.setattr(images, "_jpeg", None)
    assert torch.equal(decode_and_crop_jpeg(jpeg, [5, 7, 30, 40]), whole(jpeg)[:, 5:35, 7:47])
    assert decode_and_crop_jpeg(jpeg, [0, 0, 21, 25], ratio=8, channels=1).shape == (1, 21, 25)
    with pytest.raises(InvalidArgumentError, match="is not inside the 161x197 image"):
        decode_and_crop_jpeg(jpeg, [0, 0, 162, 5])
    with pytest.raises(InvalidArgumentError, match="not a decodable JPEG"):
        decode_and_crop_jpeg(jpeg[:len(jpeg) // 2], [0, 0, 5, 5])
    assert not RandomResizedCropJPEG(24).partial


@needs_extension
def test_random_resized_crop_gives_the_same_pixels_decoding_the_window_alone():
    for name in ("4:2:0", "progressive 4:2:0", "CMYK"):
        for seed in range(6):
            for reduced in (False, True):
                torch.manual_seed(seed)
                window = RandomResizedCropJPEG(24, reduced=reduced)(JPEGS[name])
                torch.manual_seed(seed)
                whole_image = RandomResizedCropJPEG(24, reduced=reduced, partial=False)(JPEGS[name])
                assert window.shape == (3, 24, 24) and window.is_contiguous()
                if reduced:  # libjpeg's scaled decode here, PIL's draft mode there (which may pick another scale)
                    assert (window.float() - whole_image.float()).abs().mean() < 8
                else:
                    assert torch.equal(window, whole_image), (name, seed)


@needs_extension
def test_random_resized_crop_with_tensorflows_defaults_fast_idct_and_no_antialiasing():
    """antialias=False resizes as torchvision's antialias=False; dct_method="INTEGER_FAST" decodes
    the window with TF's default IDCT: the pixels of the whole image so decoded, then cropped."""
    from torchvision.transforms import InterpolationMode, RandomResizedCrop
    from torchvision.transforms.v2 import functional as F

    for name in ("4:2:0", "progressive 4:2:0"):
        jpeg, (height, width) = JPEGS[name], size(JPEGS[name])
        for seed in range(4):
            for dct in ("", "INTEGER_FAST"):
                torch.manual_seed(seed)
                ours = RandomResizedCropJPEG(24, reduced=False, antialias=False, dct_method=dct)(jpeg)
                torch.manual_seed(seed)
                whole = decode_and_crop_jpeg(jpeg, [0, 0, height, width], dct_method=dct)
                top, left, h, w = RandomResizedCrop.get_params(whole, [0.08, 1.0], [3 / 4, 4 / 3])
                theirs = F.resized_crop(whole, top, left, h, w, [24, 24], interpolation=InterpolationMode.BILINEAR,
                                        antialias=False)
                assert torch.equal(ours, theirs.flip(-1) if torch.rand(()) < 0.5 else theirs), (name, seed, dct)
        torch.manual_seed(0)
        fast = RandomResizedCropJPEG(24, scale=(1.0, 1.0), flip=0, reduced=False, dct_method="INTEGER_FAST")(jpeg)
        torch.manual_seed(0)
        accurate = RandomResizedCropJPEG(24, scale=(1.0, 1.0), flip=0, reduced=False)(jpeg)
        torch.manual_seed(0)
        aliased = RandomResizedCropJPEG(24, scale=(1.0, 1.0), flip=0, reduced=False, antialias=False)(jpeg)
        assert not torch.equal(fast, accurate) and not torch.equal(aliased, accurate)
    with pytest.raises(ValueError, match="dct_method must be one of"):
        RandomResizedCropJPEG(24, dct_method="FLOAT")
    with pytest.raises(ValueError, match="needs the crop window decoded by the _jpeg extension"):
        RandomResizedCropJPEG(24, partial=False, dct_method="INTEGER_FAST")


SAMPLER_CASES = [([300, 500], (0.08, 1.0), (3 / 4, 4 / 3)), ([512, 256], (0.08, 1.0), (3 / 4, 4 / 3)),
                 ([400, 400], (0.5, 1.0), (0.5, 2.0)), ([9, 7], (0.08, 1.0), (3 / 4, 4 / 3)),
                 ([20, 600], (0.3, 1.0), (1.0, 1.0)), ([30, 40], (0.9, 0.5), (3 / 4, 4 / 3))]
WHOLE_IMAGE = 2  # the last cases draw no crop (no square fits; an empty area range): the whole image
SAMPLER_SIDE = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
tf.random.set_seed(1)
cases, draws = json.loads(sys.argv[1]), int(sys.argv[2])
out = []
for shape, scale, ratio in cases:
    boxes = []
    for _ in range(draws):
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            shape + [3], tf.zeros([0, 0, 4]), min_object_covered=0.0, aspect_ratio_range=ratio, area_range=scale,
            max_attempts=10, use_image_if_no_bounding_boxes=True)
        boxes.append([int(begin[0]), int(begin[1]), int(size[0]), int(size[1])])
    out.append(boxes)
print(json.dumps(out))
"""


def test_the_tensorflow_sampler_draws_crops_as_sample_distorted_bounding_box():
    """sampler="tensorflow" against TF's own draws (no boxes, min_object_covered=0): the same
    distribution of areas, heights and shapes, offsets that never reach the far edge (TF draws
    them in [0, room)), and the whole image when no crop fits; torchvision's sampler differs."""
    draws = 1500
    theirs_by_case = json.loads(run_tensorflow(SAMPLER_SIDE, json.dumps(SAMPLER_CASES), draws).strip().splitlines()[-1])
    torch.manual_seed(0)
    deciles = np.linspace(0.1, 0.9, 9)
    for (shape, scale, ratio), theirs in zip(SAMPLER_CASES, theirs_by_case):
        height, width = shape
        crop = RandomResizedCropJPEG(24, scale=scale, ratio=ratio, sampler="tensorflow")
        ours, theirs = np.array([crop.window(height, width) for _ in range(draws)]), np.array(theirs)
        for boxes in (ours, theirs):
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] > 0).all()
            assert (boxes[:, 0] + boxes[:, 2] <= height).all() and (boxes[:, 1] + boxes[:, 3] <= width).all()
            inner = boxes[:, 2] < height  # TF's offsets lie in [0, room): a crop never reaches the far edge
            assert (boxes[inner, 0] + boxes[inner, 2] < height).all()
        area = lambda boxes: boxes[:, 2] * boxes[:, 3] / (height * width)  # noqa: E731
        whole = lambda boxes: np.mean((boxes[:, 2] == height) & (boxes[:, 3] == width))  # noqa: E731
        assert abs(area(ours).mean() - area(theirs).mean()) < 0.02, shape
        assert np.abs(np.quantile(ours[:, 2], deciles) - np.quantile(theirs[:, 2], deciles)).max() <= max(2, 0.04 * height)
        assert abs(np.mean(ours[:, 3] / ours[:, 2]) - np.mean(theirs[:, 3] / theirs[:, 2])) < 0.03
        assert abs(whole(ours) - whole(theirs)) < 0.03
        if shape == [300, 500]:  # torchvision's draws are larger
            torchvision = np.array([RandomResizedCropJPEG(24, scale=scale, ratio=ratio).window(height, width)
                                    for _ in range(draws)])
            assert area(torchvision).mean() - area(theirs).mean() > 0.03
    for (shape, scale, ratio), theirs in list(zip(SAMPLER_CASES, theirs_by_case))[-WHOLE_IMAGE:]:
        assert (np.array(theirs) == [0, 0, *shape]).all()
        assert RandomResizedCropJPEG(24, scale=scale, ratio=ratio, sampler="tensorflow").window(*shape) == (0, 0, *shape)
    with pytest.raises(ValueError, match="sampler must be one of"):
        RandomResizedCropJPEG(24, sampler="keras")
    for scale, ratio in (((0.0, 1.0), (0.75, 1.25)), ((0.5, 1.5), (0.75, 1.25)), ((0.5, 1.0), (0.0, 1.25))):
        with pytest.raises(ValueError, match=r"takes scale \(TF's area_range\) in \(0, 1\]"):
            RandomResizedCropJPEG(24, scale=scale, ratio=ratio, sampler="tensorflow")
