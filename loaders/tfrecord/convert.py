"""Convert a folder of images (one subfolder per class) into sharded TFRecord files.

``python -m loaders.tfrecord.convert DIR OUT --shards N`` writes ``OUT/PREFIX-00000-of-0000N.tfrecord``
... and ``OUT/labels.txt`` (line ``i`` names class ``i``). Each record is an Example with TF's usual
image keys: ``image/encoded`` (the file's bytes, not re-encoded), ``image/format``,
``image/height``, ``image/width``, ``image/channels``, ``image/class/label``,
``image/class/text`` and ``image/filename``. Images are shuffled (``--seed``) and dealt round
robin, so every shard mixes classes. All shards are committed together at the end: an error
leaves no shard behind. ``OUT`` may be a URL (``s3://bucket/prefix``; ``--storage-option KEY=VALUE``).
"""
from __future__ import annotations

import argparse
import logging
import os
import random
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from loaders.errors import InvalidArgumentError
from loaders.files import StorageOptions, atomic_write, join, makedirs, parse_storage_options
from loaders.tfrecord.writer import TFRecordWriter

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff"}
log = logging.getLogger(__name__)


def find_images(folder: "str | os.PathLike[str]") -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names (sorted subfolder names) and ``(image path, label)`` pairs under ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    if not classes:
        raise InvalidArgumentError(f"{root}: expected one subfolder per class, found none")
    stray = [entry.name for entry in root.iterdir() if entry.is_file()]
    if stray:
        log.warning("%s: %d files outside class folders are not converted: %s", root, len(stray), ", ".join(sorted(stray)[:5]))
    images = []
    for label, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                images.append((path, label))
            elif path.is_file():
                log.warning("%s: not an image suffix (%s), not converted", path, ", ".join(sorted(IMAGE_SUFFIXES)))
    if not images:
        raise InvalidArgumentError(f"{root}: no images found in the class folders {classes}")
    return classes, images


def image_example(path: Path, label: int, class_name: str) -> dict:
    """The features of one image file: its encoded bytes, format, size, label and class name."""
    data = path.read_bytes()
    try:
        with Image.open(path) as image:
            width, height = image.size
            channels = len(image.getbands())
            kind = (image.format or path.suffix.lstrip(".")).lower()
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidArgumentError(f"{path}: not a readable image: {exc}") from None
    return {
        "image/encoded": data, "image/format": kind, "image/height": height, "image/width": width,
        "image/channels": channels, "image/class/label": label, "image/class/text": class_name,
        "image/filename": path.name,
    }


def convert(
    folder: "str | os.PathLike[str]", out: "str | os.PathLike[str]", shards: int = 1, prefix: str = "data",
    compression: Optional[str] = None, seed: int = 0, index: bool = False, storage_options: StorageOptions = None,
) -> list[str]:
    """Write the images under ``folder`` as ``shards`` TFRecord files in ``out``; returns their paths."""
    if shards < 1:
        raise InvalidArgumentError(f"shards must be >= 1, got {shards}")
    classes, images = find_images(folder)
    random.Random(seed).shuffle(images)
    out = os.fspath(out)
    makedirs(out)
    suffix = {"GZIP": ".gz", "ZLIB": ".zlib"}.get((compression or "").upper(), "")
    paths = [join(out, f"{prefix}-{i:05d}-of-{shards:05d}.tfrecord{suffix}") for i in range(shards)]
    writers = [TFRecordWriter(path, compression, index=index, storage_options=storage_options) for path in paths]
    try:
        for number, (path, label) in enumerate(tqdm(images, desc="converting", unit="image")):
            writers[number % shards].write(image_example(path, label, classes[label]))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for writer in writers:
        writer.close()
    with atomic_write(join(out, "labels.txt"), storage_options) as labels:
        labels.write("".join(f"{name}\n" for name in classes).encode())
    log.info("%d images of %d classes -> %d shards in %s", len(images), len(classes), shards, out)
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: ``python -m loaders.tfrecord.convert DIR OUT --shards N``."""
    parser = argparse.ArgumentParser(prog="python -m loaders.tfrecord.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", metavar="DIR", help="folder with one subfolder of images per class")
    parser.add_argument("out", metavar="OUT", help="output folder for the shards and labels.txt")
    parser.add_argument("--shards", type=int, default=1, help="number of TFRecord files (default 1)")
    parser.add_argument("--prefix", default="data", help="shard name prefix (default 'data')")
    parser.add_argument("--compression", default=None, choices=["GZIP", "ZLIB"], help="compress the shards")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffle before sharding")
    parser.add_argument("--index", action="store_true", help="also write FILE.tfindex for each shard")
    parser.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of OUT's filesystem (fsspec), e.g. client_kwargs.endpoint_url=http://...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        options = parse_storage_options(args.storage_option)
        convert(args.folder, args.out, args.shards, args.prefix, args.compression, args.seed, args.index, options)
    except (OSError, ValueError) as exc:  # InvalidArgumentError is a ValueError
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
