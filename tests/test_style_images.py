"""torchstyle.images: every kind of input file becomes RGB in [0, 1]; bad files get clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import struct
import zlib

from torchstyle.images import (ImageError, check_output_path, image_to_tensor, load_image,
                               match_histogram, match_luminance, resize, rgb_to_yiq, save_image,
                               tensor_to_image, with_chroma_of, yiq_to_rgb)


def _gradient(width: int = 24, height: int = 16) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (height, width, 1)),
                           np.broadcast_to(y, (height, width, 1)),
                           np.full((height, width, 1), 128.0)], axis=2).astype(np.uint8)


@pytest.mark.parametrize("mode,suffix", [
    ("L", ".png"), ("1", ".png"), ("RGBA", ".png"), ("LA", ".png"), ("P", ".png"),
    ("CMYK", ".jpg"), ("CMYK", ".tif"), ("RGB", ".jpg"),
])
def test_any_mode_loads_as_rgb_in_unit_range(tmp_path, mode, suffix):
    path = tmp_path / f"picture{suffix}"
    Image.fromarray(_gradient()).convert(mode).save(path)
    tensor = image_to_tensor(load_image(path))
    assert tensor.shape == (1, 3, 16, 24) and tensor.dtype == torch.float32
    assert tensor.min() >= 0.0 and tensor.max() <= 1.0


def test_alpha_is_dropped_and_palette_transparency_is_kept_as_colors(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0  # fully transparent red
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    tensor = image_to_tensor(load_image(tmp_path / "clear.png"))
    torch.testing.assert_close(tensor[0, :, 0, 0], torch.tensor([200 / 255, 0.0, 0.0]))
    palette = Image.fromarray(_gradient()).convert("P")
    palette.info["transparency"] = 0
    palette.save(tmp_path / "palette.png")
    assert image_to_tensor(load_image(tmp_path / "palette.png")).shape == (1, 3, 16, 24)


def test_sixteen_bit_grayscale_keeps_its_precision(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 8).astype(np.uint16).reshape(8, 64)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    tensor = image_to_tensor(load_image(tmp_path / "deep.png"))
    assert tensor.shape == (1, 3, 8, 64)
    assert tensor.max().item() == pytest.approx(1.0) and tensor.min().item() == 0.0
    assert torch.unique(tensor[0, 0]).numel() > 256  # more levels than 8 bits hold


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(_gradient(24, 16))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees
    image.save(tmp_path / "phone.jpg", exif=exif)
    assert load_image(tmp_path / "phone.jpg").size == (16, 24)


def test_missing_non_image_and_truncated_files_name_the_file(tmp_path):
    with pytest.raises(ImageError, match="missing.png does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "notes.jpg").write_text("just text")
    with pytest.raises(ImageError, match="notes.jpg is not an image file"):
        load_image(tmp_path / "notes.jpg")
    for suffix in (".jpg", ".png"):
        whole = tmp_path / f"whole{suffix}"
        noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
        Image.fromarray(noise).save(whole)
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        with pytest.raises(ImageError, match=f"cut{suffix} is damaged or truncated"):
            load_image(cut)


def test_resize_keeps_aspect_and_stretches_extreme_ratios(caplog):
    image = torch.rand(1, 3, 30, 60)
    assert resize(image, 40).shape == (1, 3, 20, 40)
    assert resize(image, 60) is image
    thin = torch.rand(1, 3, 2, 400)
    assert resize(thin, 64, min_side=16).shape == (1, 3, 16, 64)
    assert "stretching its short side to 16 px" in caplog.text


def test_save_is_atomic_and_round_trips(tmp_path):
    image = image_to_tensor(Image.fromarray(_gradient()))
    path = save_image(image, tmp_path / "out.png")
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    torch.testing.assert_close(image_to_tensor(load_image(path)), image)
    assert tensor_to_image(image[0]).size == (24, 16)


def test_failed_save_leaves_no_file(tmp_path):
    class Broken(Exception):
        pass

    class Exploding:
        def save(self, *args, **kwargs):
            raise Broken()

    with pytest.raises(Broken):
        save_image(Exploding(), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_output_path_checks(tmp_path):
    content = tmp_path / "content.png"
    content.touch()
    assert check_output_path(tmp_path / "x.jpg", [content]) == tmp_path / "x.jpg"
    with pytest.raises(ImageError, match="output folder .*nowhere does not exist"):
        check_output_path(tmp_path / "nowhere" / "out.png")
    with pytest.raises(ImageError, match="is also an input image"):
        check_output_path(tmp_path / "." / "content.png", [content])
    with pytest.raises(ImageError, match="unknown image extension '.txt'"):
        check_output_path(tmp_path / "out.txt")
    with pytest.raises(ImageError, match="is a folder"):
        check_output_path(tmp_path / ".")


def test_yiq_round_trip_and_chroma_transfer():
    image, content = torch.rand(1, 3, 5, 5), torch.rand(1, 3, 5, 5) * 0.5 + 0.25
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(image)), image, rtol=1e-5, atol=1e-5)
    gray = rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1) * 0.2 + 0.4
    mixed = rgb_to_yiq(with_chroma_of(gray, content))
    torch.testing.assert_close(mixed[:, 1:], rgb_to_yiq(content)[:, 1:], rtol=1e-5, atol=1e-5)


def test_match_luminance_takes_the_content_statistics():
    style, content = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16) * 0.3 + 0.4
    matched = match_luminance(style, content)
    content_y = rgb_to_yiq(content)[:, 0]
    assert matched[:, 0].mean().item() == pytest.approx(content_y.mean().item(), abs=1e-4)
    assert matched[:, 0].std().item() == pytest.approx(content_y.std().item(), abs=1e-4)
    assert torch.equal(matched[:, 0], matched[:, 1])


def test_match_luminance_matches_each_image_of_a_batch_to_its_own_content():
    style, contents = torch.rand(1, 3, 16, 16), torch.stack([torch.full((3, 8, 8), 0.2), torch.rand(3, 8, 8)])
    contents[0, :, :4] = 0.6
    matched = match_luminance(style, contents)
    assert matched.shape == (2, 3, 16, 16)
    for image, content in zip(matched, contents):
        assert image[0].mean().item() == pytest.approx(rgb_to_yiq(content[None])[0, 0].mean().item(), abs=2e-3)


def test_match_histogram_takes_the_reference_values_and_keeps_the_order():
    torch.manual_seed(0)
    image, reference = torch.rand(2, 3, 6, 5), torch.rand(1, 3, 5, 6) ** 3
    matched = match_histogram(image, reference)
    for b in range(2):
        for c in range(3):
            torch.testing.assert_close(matched[b, c].flatten().sort().values,
                                       reference[0, c].flatten().sort().values)
            assert torch.equal(matched[b, c].flatten().argsort(), image[b, c].flatten().argsort())
    smaller = match_histogram(image, reference[..., :3, :4])  # quantiles interpolated
    assert smaller.min() >= reference[..., :3, :4].min() and smaller.max() <= reference[..., :3, :4].max()


def _sixteen_bit_pixels(image: torch.Tensor) -> np.ndarray:
    return image[0].permute(1, 2, 0).mul(65535).round().numpy().astype(np.uint16)


def test_sixteen_bit_png_holds_sixteen_bits(tmp_path):
    image = torch.rand(1, 3, 5, 7)
    path = save_image(image, tmp_path / "deep.png", bits=16)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, color) == (7, 5, 16, 2)
    start = data.index(b"IDAT")
    size = struct.unpack(">I", data[start - 4:start])[0]
    rows = np.frombuffer(zlib.decompress(data[start + 4:start + 4 + size]), np.uint8).reshape(5, -1)
    assert (rows[:, 0] == 0).all()  # filter type 0
    decoded = rows[:, 1:].copy().view(">u2").reshape(5, 7, 3)
    assert np.array_equal(decoded, _sixteen_bit_pixels(image))
    with Image.open(path) as picture:  # a PNG any reader takes (Pillow keeps 8 of the 16 bits)
        picture.load()
        assert picture.size == (7, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["deep.png"]


def test_sixteen_bit_tiff_holds_sixteen_bits(tmp_path):
    image = torch.rand(1, 3, 4, 6)
    path = save_image(image, tmp_path / "deep.tif", bits=16)
    data = path.read_bytes()
    assert data[:4] == b"II*\x00"
    with Image.open(path) as picture:
        picture.load()
        assert picture.size == (6, 4) and picture.tag_v2[258] == (16, 16, 16)
        strip = picture.tag_v2[273][0] if isinstance(picture.tag_v2[273], tuple) else picture.tag_v2[273]
    decoded = np.frombuffer(data[strip:strip + 4 * 6 * 3 * 2], "<u2").reshape(4, 6, 3)
    assert np.array_equal(decoded, _sixteen_bit_pixels(image))


def test_sixteen_bits_only_where_the_format_holds_them(tmp_path):
    with pytest.raises(ImageError, match="cannot write 16 bits per channel to .*out.jpg; use .png or .tif"):
        save_image(torch.rand(1, 3, 4, 4), tmp_path / "out.jpg", bits=16)
    with pytest.raises(ImageError, match="bits must be 8 or 16"):
        save_image(torch.rand(1, 3, 4, 4), tmp_path / "out.png", bits=12)
    assert list(tmp_path.iterdir()) == []
