"""Convert a folder of images (one subfolder per class) into sharded TFRecord files.

``python -m loaders.tfrecord.convert DIR OUT --shards N`` writes ``OUT/PREFIX-00000-of-0000N.tfrecord``
... and ``OUT/labels.txt`` (line ``i`` names class ``i``). Each record is an Example with TF's usual
image keys: ``image/encoded`` (the file's bytes, not re-encoded), ``image/format``,
``image/height``, ``image/width``, ``image/channels``, ``image/class/label``,
``image/class/text`` and ``image/filename``. Images are shuffled (``--seed``) and dealt round
robin, so every shard mixes classes. All shards are committed together at the end: an error
leaves no shard behind. ``DIR`` and ``OUT`` may be URLs (``s3://bucket/prefix``; ``--storage-option KEY=VALUE``).
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import random
from typing import Optional, Sequence

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from loaders.errors import InvalidArgumentError
from loaders.files import (
    StorageOptions, atomic_write, call, filesystem, is_remote, join, local_path, makedirs, parse_storage_options, read_bytes,
)
from loaders.tfrecord.writer import TFRecordWriter

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff"}
log = logging.getLogger(__name__)


def _list_folder(folder: str, storage_options: StorageOptions) -> tuple[list[str], list[str]]:
    """The subfolder names right under ``folder`` and the paths of all files below it, relative to
    it, sorted; a local folder or a URL prefix (object stores have no empty folders)."""
    if is_remote(folder):
        fs, root = filesystem(folder, storage_options)
        root = root.rstrip("/")
        found = call(folder, "listing", fs.find, root)
        relative = sorted(name[len(root) + 1:] for name in found if name.startswith(f"{root}/") and not name.endswith("/"))
        if not relative:
            raise FileNotFoundError(f"{folder}: no such folder (no object under this prefix)")
        return sorted({name.split("/")[0] for name in relative if "/" in name}), relative
    root = local_path(folder)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{folder}: no such folder")
    relative = sorted(os.path.relpath(os.path.join(top, name), root).replace(os.sep, "/")
                      for top, _, names in os.walk(root) for name in names)
    return sorted(entry.name for entry in os.scandir(root) if entry.is_dir()), relative


def find_images(folder: "str | os.PathLike[str]", storage_options: StorageOptions = None) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted subfolder names) and ``(image path or URL, label)`` pairs under ``folder``."""
    root = os.fspath(folder)
    classes, relative = _list_folder(root, storage_options)
    if not classes:
        raise InvalidArgumentError(f"{root}: expected one subfolder per class, found none")
    stray = [name for name in relative if "/" not in name]
    if stray:
        log.warning("%s: %d files outside class folders are not converted: %s", root, len(stray), ", ".join(stray[:5]))
    labels = {name: label for label, name in enumerate(classes)}
    images = []
    for name in relative:
        if "/" not in name:
            continue
        path = join(root, name)
        if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
            images.append((path, labels[name.split("/")[0]]))
        else:
            log.warning("%s: not an image suffix (%s), not converted", path, ", ".join(sorted(IMAGE_SUFFIXES)))
    if not images:
        raise InvalidArgumentError(f"{root}: no images found in the class folders {classes}")
    return classes, images


def image_example(path: str, label: int, class_name: str, storage_options: StorageOptions = None) -> dict:
    """The features of one image file or object: its encoded bytes, format, size, label and class name."""
    data = read_bytes(path, storage_options)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            channels = len(image.getbands())
            kind = (image.format or os.path.splitext(path)[1].lstrip(".")).lower()
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidArgumentError(f"{path}: not a readable image: {exc}") from None
    return {
        "image/encoded": data, "image/format": kind, "image/height": height, "image/width": width,
        "image/channels": channels, "image/class/label": label, "image/class/text": class_name,
        "image/filename": path.rsplit("/", 1)[-1],
    }


def convert(
    folder: "str | os.PathLike[str]", out: "str | os.PathLike[str]", shards: int = 1, prefix: str = "data",
    compression: Optional[str] = None, seed: int = 0, index: bool = False, storage_options: StorageOptions = None,
) -> list[str]:
    """Write the images under ``folder`` as ``shards`` TFRecord files in ``out``; returns their paths.
    Either may be a URL; ``storage_options`` serve both."""
    if shards < 1:
        raise InvalidArgumentError(f"shards must be >= 1, got {shards}")
    classes, images = find_images(folder, storage_options)
    random.Random(seed).shuffle(images)
    out = os.fspath(out)
    makedirs(out)
    suffix = {"GZIP": ".gz", "ZLIB": ".zlib"}.get((compression or "").upper(), "")
    paths = [join(out, f"{prefix}-{i:05d}-of-{shards:05d}.tfrecord{suffix}") for i in range(shards)]
    writers = [TFRecordWriter(path, compression, index=index, storage_options=storage_options) for path in paths]
    try:
        for number, (path, label) in enumerate(tqdm(images, desc="converting", unit="image")):
            writers[number % shards].write(image_example(path, label, classes[label], storage_options))
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
                        help="an option of the filesystem of DIR and OUT (fsspec), e.g. client_kwargs.endpoint_url=http://...")
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
