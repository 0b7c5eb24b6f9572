"""Lecture 9's live example: an image, its label and its shape into a TFRecord file, and back.

    python examples/tfrecord_images.py [IMAGE] [--out FILE]

With no IMAGE, a small 32x48 RGB picture is drawn with numpy. The script writes one
``tf.train.Example`` (``label``: int64, ``shape``: the int32 shape as bytes, ``image``: the raw
uint8 pixels as bytes), reads it back with TF1's ``tf_record_iterator`` and
``parse_single_example``, rebuilds the image as TF's ``decode_raw`` + ``reshape`` would, and
checks that every pixel is identical.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from loaders.tfrecord import FixedLenFeature, TFRecordWriter, parse_single_example, tf_record_iterator  # noqa: E402


def get_image_binary(filename: str) -> tuple[bytes, bytes]:
    """The image's shape (int32) and pixels (uint8) as raw bytes, as in the lecture."""
    image = np.asarray(Image.open(filename), np.uint8)
    shape = np.array(image.shape, np.int32)
    return shape.tobytes(), image.tobytes()


def write_to_tfrecord(label: int, shape: bytes, binary_image: bytes, tfrecord_file: str) -> None:
    """One Example with the label, the shape bytes and the image bytes."""
    with TFRecordWriter(tfrecord_file) as writer:
        writer.write({"label": label, "shape": shape, "image": binary_image})


def read_from_tfrecord(filename: str) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Label, shape and image of the first record, decoded as the lecture's graph does."""
    serialized = next(tf_record_iterator(filename))
    features = parse_single_example(serialized, features={
        "label": FixedLenFeature([], torch.int64),
        "shape": FixedLenFeature([], "string"),
        "image": FixedLenFeature([], "string"),
    })
    image = torch.frombuffer(bytearray(features["image"]), dtype=torch.uint8)  # tf.decode_raw(image, tf.uint8)
    shape = torch.frombuffer(bytearray(features["shape"]), dtype=torch.int32)  # tf.decode_raw(shape, tf.int32)
    return int(features["label"]), shape, image.reshape(shape.tolist())


def sample_image(path: str) -> None:
    """Draw a small RGB gradient with a square, so the example needs no image file."""
    y, x = np.mgrid[0:32, 0:48]
    pixels = np.stack([x * 5, y * 7, (x + y) * 3], axis=-1).astype(np.uint8)
    pixels[8:16, 20:28] = 255
    Image.fromarray(pixels).save(path)


def main(argv: "list[str] | None" = None) -> int:
    """Write, read back and compare; exit status 0 when the pixels are identical."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", nargs="?", help="an image file (default: a generated picture)")
    parser.add_argument("--label", type=int, default=1)
    parser.add_argument("--out", help="the TFRecord file to write (default: a temporary file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        image_file = args.image or os.path.join(scratch, "sample.png")
        if not args.image:
            sample_image(image_file)
        tfrecord_file = args.out or os.path.join(scratch, "image.tfrecord")
        shape, binary_image = get_image_binary(image_file)
        write_to_tfrecord(args.label, shape, binary_image, tfrecord_file)
        label, shape_back, image = read_from_tfrecord(tfrecord_file)
        original = np.asarray(Image.open(image_file), np.uint8)
        identical = label == args.label and np.array_equal(image.numpy(), original)
        print(f"{tfrecord_file}: {os.path.getsize(tfrecord_file)} bytes, label {label}, shape {shape_back.tolist()}")
        print("pixels identical" if identical else "pixels DIFFER")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
