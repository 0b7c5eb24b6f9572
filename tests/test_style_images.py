"""torchstyle.images: every kind of input file becomes RGB in [0, 1]; bad files get clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from torchstyle.images import (ImageError, check_output_path, image_to_tensor, load_image,
                               match_luminance, resize, rgb_to_yiq, save_image, tensor_to_image,
                               with_chroma_of, yiq_to_rgb)


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
