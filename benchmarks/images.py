"""JPEG training input: images/s through DataLoaders with 2 workers, beside the ceiling and tf.data.

    python benchmarks/images.py [--images 3000] [--size 224] [--batch 64] [--repeat 3] [--dir DIR] [--tensorflow]

Draws ``--images`` small JPEGs (256-512 pixels a side, 10 classes), converts them to 8
ImageNet-style shards (``image/encoded``, ``image/class/label``) with ``python -m
loaders.tfrecord.convert --index``, and times one pass over them, decoded with a random
``--size`` crop and a horizontal flip, in batches of ``--batch``, through: PyTorch's
``DataLoader(num_workers=2)`` and ``SharedMemoryDataLoader``, with torchvision's decode +
``RandomResizedCrop`` + ``RandomHorizontalFlip`` or ``RandomResizedCropJPEG`` (decoding the crop
window alone with the ``_jpeg`` C extension, or the whole image: ``partial=False``), a new loader's
first epoch and (``SharedMemoryDataLoader``) the second epoch of a loader, whose new workers are
lent the first's arenas, as every epoch after the first in training; the ``tfrecord`` package's dataset in a ``DataLoader``; the ceilings: 2 processes that decode and
transform half of the images each with nothing crossing; and (``--tensorflow``, its own interpreter, rows lost
alone when it fails) tf.data: interleave + map(decode_and_crop_jpeg) + batch + prefetch, with TF's
defaults (fast IDCT, no antialiasing) and its own crop sampler, with TF's defaults and crop windows
drawn as torchvision's ``RandomResizedCrop`` draws them (larger: the same work as ours), and with the
accurate IDCT and antialiased resize that give torchvision's pixels, as the other rows do; and
``RandomResizedCropJPEG(antialias=False, dct_method="INTEGER_FAST", sampler="tensorflow")``, TF's
defaults and crop sampler in ours (the same work as tf.data's first row). The
cases run in turn (tf.data's too), ``--repeat`` rounds; each row is its best round.
"""
from __future__ import annotations

import argparse
import glob
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional

import numpy as np
import torch
from PIL import Image
from torch.utils.data import ChainDataset, DataLoader
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import v2

# Run as a script, this folder is first on sys.path, and its tfrecord.py would shadow the package.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from benchmarks.tf_side import run_tensorflow  # noqa: E402
from loaders.loader import SharedMemoryDataLoader  # noqa: E402
from loaders.sharding import Shard  # noqa: E402
from loaders.tfrecord import FixedLenFeature, RandomResizedCropJPEG, TFRecordDataset  # noqa: E402
from loaders.tfrecord import dataset as dataset_module  # noqa: E402

FEATURES = {"image/encoded": FixedLenFeature([], "string"), "image/class/label": FixedLenFeature([], torch.int64)}
WORKERS = 2
TORCHVISION = "torchvision decode + RandomResizedCrop + flip"
WHOLE = "RandomResizedCropJPEG, whole image decoded (partial=False)"
WINDOW = "RandomResizedCropJPEG, crop window decoded (_jpeg.c)"
FAST = "RandomResizedCropJPEG(antialias=False, dct_method='INTEGER_FAST', sampler='tensorflow'): TF's defaults"


def draw_images(folder: str, count: int, classes: int = 10) -> None:
    """``count`` JPEGs in ``classes`` subfolders: smooth color fields with noise, 256-512 pixels a side."""
    rng = np.random.default_rng(0)
    for number in range(count):
        width, height = (int(v) for v in rng.integers(256, 513, size=2))
        y, x = np.mgrid[0:height, 0:width]
        base = rng.integers(0, 256, size=3)
        pixels = (base + np.stack([x * 200 // width, y * 200 // height, (x + y) * 100 // (width + height)], -1)) % 256
        pixels = np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8)
        path = os.path.join(folder, f"class{number % classes}", f"{number:06d}.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(pixels).save(path, "JPEG", quality=90)


class TorchvisionCrop:
    """The usual torchvision training transform of a record: decode, RandomResizedCrop, flip."""

    def __init__(self, size: int) -> None:
        self.crop = v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()])

    def __call__(self, example: dict) -> tuple:
        data = torch.frombuffer(bytearray(example["image/encoded"]), dtype=torch.uint8)
        return self.crop(decode_jpeg(data, mode=ImageReadMode.RGB)), example["image/class/label"]


class JPEGCrop:
    """The same with ``RandomResizedCropJPEG`` (reduced-size decoding where the crop allows; the crop
    window alone decoded, or with ``partial=False`` the whole image)."""

    def __init__(self, size: int, **options: Any) -> None:
        self.crop = RandomResizedCropJPEG(size, **options)

    def __call__(self, example: dict) -> tuple:
        return self.crop(example["image/encoded"]), example["image/class/label"]


class PackageCrop(TorchvisionCrop):
    """The torchvision transform for the ``tfrecord`` package's records (its bytes, numpy labels)."""

    def __call__(self, example: dict) -> tuple:
        data = torch.frombuffer(bytearray(example["image/encoded"]), dtype=torch.uint8)
        return self.crop(decode_jpeg(data, mode=ImageReadMode.RGB)), int(example["image/class/label"][0])


def count_images(batches) -> int:
    return sum(len(labels) for _, labels in batches)


def later_epoch(loader: Any) -> float:
    """The seconds of ``loader``'s second epoch, as a training loop sees every epoch after its first."""
    count_images(loader)
    start = time.perf_counter()
    count_images(loader)
    return time.perf_counter() - start


def _share(files: list, transform: Callable, index: int) -> None:
    torch.set_num_threads(1)  # as in a DataLoader worker
    dataset_module.current_shard = lambda: Shard(index, WORKERS)
    for _ in TFRecordDataset(files, FEATURES, transform=transform):
        pass


def ceiling(files: list, transform: Callable) -> int:
    """2 processes decode and transform a half of the images each; nothing crosses."""
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_share, args=(files, transform, i)) for i in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    return 0


def cases(files: list, size: int, batch: int) -> list[tuple[str, Callable[[], Any]]]:
    from tfrecord.torch.dataset import TFRecordDataset as PackageDataset

    torchvision_crop, whole_crop, window_crop = TorchvisionCrop(size), JPEGCrop(size, partial=False), JPEGCrop(size)
    fast_crop = JPEGCrop(size, antialias=False, dct_method="INTEGER_FAST", sampler="tensorflow")
    ours = lambda transform: TFRecordDataset(files, FEATURES, transform=transform)  # noqa: E731
    package = ChainDataset([PackageDataset(f, f + ".tfindex", {"image/encoded": "byte", "image/class/label": "int"},
                                           transform=PackageCrop(size)) for f in files])
    loader = lambda cls, data: count_images(cls(data, batch_size=batch, num_workers=WORKERS))  # noqa: E731
    second = lambda data: later_epoch(SharedMemoryDataLoader(data, batch_size=batch, num_workers=WORKERS))  # noqa: E731
    return [
        (f"DataLoader: {TORCHVISION}", lambda: loader(DataLoader, ours(torchvision_crop))),
        (f"SharedMemoryDataLoader: {TORCHVISION}",
         lambda: loader(SharedMemoryDataLoader, ours(torchvision_crop))),
        (f"DataLoader: {WHOLE}", lambda: loader(DataLoader, ours(whole_crop))),
        (f"SharedMemoryDataLoader: {WHOLE}", lambda: loader(SharedMemoryDataLoader, ours(whole_crop))),
        (f"DataLoader: {WINDOW}", lambda: loader(DataLoader, ours(window_crop))),
        (f"SharedMemoryDataLoader: {WINDOW}", lambda: loader(SharedMemoryDataLoader, ours(window_crop))),
        (f"SharedMemoryDataLoader: {FAST}", lambda: loader(SharedMemoryDataLoader, ours(fast_crop))),
        (f"SharedMemoryDataLoader, its second epoch: {TORCHVISION}", lambda: second(ours(torchvision_crop))),
        (f"SharedMemoryDataLoader, its second epoch: {WHOLE}", lambda: second(ours(whole_crop))),
        (f"SharedMemoryDataLoader, its second epoch: {WINDOW}", lambda: second(ours(window_crop))),
        (f"SharedMemoryDataLoader, its second epoch: {FAST}", lambda: second(ours(fast_crop))),
        (f"DataLoader: tfrecord package + {TORCHVISION}",
         lambda: loader(DataLoader, package)),
        (f"ceiling, 2 processes: {TORCHVISION}", lambda: ceiling(files, torchvision_crop)),
        (f"ceiling, 2 processes: {WHOLE}", lambda: ceiling(files, whole_crop)),
        (f"ceiling, 2 processes: {WINDOW}", lambda: ceiling(files, window_crop)),
        (f"ceiling, 2 processes: {FAST}", lambda: ceiling(files, fast_crop)),
    ]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write the images and shards (default: a temp folder)")
    parser.add_argument("--tensorflow", action="store_true", help="add tf.data's row (its own interpreter)")
    args = parser.parse_args(argv)

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        draw_images(os.path.join(scratch, "images"), args.images)
        subprocess.run([sys.executable, "-m", "loaders.tfrecord.convert", os.path.join(scratch, "images"),
                        os.path.join(scratch, "shards"), "--shards", "8", "--index"], check=True, cwd=ROOT,
                       capture_output=True)
        files = sorted(glob.glob(os.path.join(scratch, "shards", "*.tfrecord")))
        megabytes = sum(os.path.getsize(f) for f in files) / 1e6
        chosen = cases(files, args.size, args.batch)
        best = {name: float("inf") for name, _ in chosen}
        missing = ""
        for _ in range(args.repeat):
            for name, run in chosen:
                start = time.perf_counter()
                seconds = run()  # the seconds of the part timed, for a case that times a part of its run
                best[name] = min(best[name], seconds if isinstance(seconds, float) else time.perf_counter() - start)
            if args.tensorflow and not missing:  # a round of tf.data's rows in each round, as a load comes and goes
                found, missing = run_tensorflow(["images", os.path.join(scratch, "shards", "*.tfrecord"), 1,
                                                 args.size, args.batch], timeout=720)
                for name, seconds in found.items():
                    best[name] = min(best.get(name, float("inf")), seconds)
    print(f"{args.images} JPEGs ({megabytes:.0f} MB in 8 shards), {args.size}x{args.size} crops, batches of "
          f"{args.batch}, best of {args.repeat} interleaved rounds, {os.cpu_count()} CPUs, load average {load:.1f} "
          f"before and {os.getloadavg()[0]:.1f} after\n")
    width = max(len(name) for name in best)
    print(f"| {'pipeline':{width}s} | {'seconds':>8s} | {'images/s':>9s} |")
    print(f"|{'-' * (width + 2)}|{'-' * 9}:|{'-' * 10}:|")
    for name, seconds in best.items():
        print(f"| {name:{width}s} | {seconds:8.3f} | {args.images / seconds:9,.0f} |")
    if missing:
        print(f"\ntf.data's row left out: {missing}")
    print()
    for name in best:
        for transform in (TORCHVISION, WHOLE, WINDOW, FAST):
            top = f"ceiling, 2 processes: {transform}"
            if name.endswith(f": {transform}") and name != top and top in best:
                print(f"{name}: {best[top] / best[name]:.2f}x the ceiling (target >= 0.95x)")
    tf_names = [name for name in best if name.startswith("TensorFlow")]
    if tf_names:
        print("\nAgainst tf.data's rows (target > 1x): " + " / ".join(name.partition("prefetch; ")[2] for name in tf_names))
        for name in best:
            if "SharedMemoryDataLoader" in name:
                print(f"{name}: " + " / ".join(f"{best[tf] / best[name]:.2f}x" for tf in tf_names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
