"""The image folder converter and the lecture's image example, end to end."""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from loaders.errors import InvalidArgumentError
from loaders.tfrecord import FixedLenFeature, TFRecordDataset
from loaders.tfrecord.convert import main as convert_main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tfrecord_images.py"
FEATURES = {
    "image/encoded": FixedLenFeature([], "string"),
    "image/class/label": FixedLenFeature([], torch.int64),
    "image/class/text": FixedLenFeature([], "string"),
    "image/height": FixedLenFeature([], torch.int64),
    "image/width": FixedLenFeature([], torch.int64),
}


def image_folder(root: Path) -> dict[str, np.ndarray]:
    pixels = {}
    for name, count in (("cats", 3), ("dogs", 2)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            array = np.full((4 + i, 6, 3), 40 * i + len(name), np.uint8)
            Image.fromarray(array).save(root / name / f"{i}.png")
            pixels[f"{name}/{i}"] = array
    return pixels


def test_convert_folder_into_shards(tmp_path):
    pixels = image_folder(tmp_path / "images")
    assert convert_main([str(tmp_path / "images"), str(tmp_path / "out"), "--shards", "2", "--index"]) == 0
    shards = sorted(p.name for p in (tmp_path / "out").glob("*.tfrecord"))
    assert shards == ["data-00000-of-00002.tfrecord", "data-00001-of-00002.tfrecord"]
    assert (tmp_path / "out" / "labels.txt").read_text() == "cats\ndogs\n"
    assert (tmp_path / "out" / "data-00000-of-00002.tfrecord.tfindex").exists()
    found = {}
    for example in TFRecordDataset(str(tmp_path / "out" / "*.tfrecord"), FEATURES):
        image = np.asarray(Image.open(io.BytesIO(example["image/encoded"])))
        name = example["image/class/text"].decode()
        assert ["cats", "dogs"][int(example["image/class/label"])] == name
        assert (int(example["image/height"]), int(example["image/width"])) == image.shape[:2]
        found[f"{name}/{int(image.shape[0]) - 4}"] = image
    assert found.keys() == pixels.keys() and all(np.array_equal(found[k], pixels[k]) for k in pixels)


def test_convert_leaves_nothing_on_a_bad_image(tmp_path):
    image_folder(tmp_path / "images")
    (tmp_path / "images" / "dogs" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InvalidArgumentError, match="broken.jpg: not a readable image"):
        from loaders.tfrecord.convert import convert

        convert(tmp_path / "images", tmp_path / "out", shards=2)
    assert list((tmp_path / "out").iterdir()) == []
    assert convert_main([str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 1


def test_lecture_image_example_round_trips_pixels(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("tfrecord_images", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)).save(photo)
    assert example.main([str(photo), "--label", "4", "--out", str(tmp_path / "photo.tfrecord")]) == 0
    assert "label 4, shape [5, 7, 3]" in capsys.readouterr().out
    label, shape, image = example.read_from_tfrecord(str(tmp_path / "photo.tfrecord"))
    assert label == 4 and shape.tolist() == [5, 7, 3]
    assert np.array_equal(image.numpy(), np.asarray(Image.open(photo)))
    assert example.main([]) == 0
