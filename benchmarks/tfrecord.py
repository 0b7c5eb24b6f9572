"""TFRecord reading speed, side by side with the ``tfrecord`` package and the disk ceiling.

    python benchmarks/tfrecord.py [--records 100000] [--repeat 3] [--dir DIR] [--tensorflow]

Generates a file of Examples (a 2 KB bytes feature, 16 floats, an int64 label; ~220 MB for 100k
records) and its index, and prints records/s and MB/s for: reading the file to /dev/null (the
ceiling), (a) framing with CRC checks, (b) full decode to tensors, (c) a DataLoader with 2
workers (each reads half of the file, found through the index); each the best of ``--repeat``
runs with the file in the page cache, plus cold-cache rows (the file's pages dropped with
``posix_fadvise``). The ``tfrecord`` package never checks CRCs. ``--tensorflow`` adds
TensorFlow's own readers (needs ``tensorflow`` installed). Targets: (a) within 2x of the
ceiling, (b) at least 3x the ``tfrecord`` package.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

# This file is named tfrecord.py: keep its folder off sys.path so `import tfrecord` finds the package.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from loaders.tfrecord import FixedLenFeature, TFRecordDataset, TFRecordWriter, index_path, iter_records  # noqa: E402
from loaders.tfrecord import format as tfrecord_format  # noqa: E402

FEATURES = {
    "image": FixedLenFeature([], "string"),
    "floats": FixedLenFeature([16], torch.float32),
    "label": FixedLenFeature([], torch.int64),
}
PACKAGE_DESCRIPTION = {"image": "byte", "floats": "float", "label": "int"}


def generate(path: str, records: int) -> None:
    """Write ``records`` Examples with random contents (seeded), and the file's index."""
    rng = np.random.default_rng(0)
    with TFRecordWriter(path, index=True) as writer:
        for i in range(records):
            writer.write({"image": rng.bytes(2048), "floats": rng.random(16, dtype=np.float32), "label": i % 1000})


def to_dev_null(path: str) -> int:
    """Copy the file to /dev/null in 1 MiB reads, like ``cat``."""
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as source, open(os.devnull, "wb", buffering=0) as sink:
        while True:
            got = source.readinto(buffer)
            if not got:
                return 0
            sink.write(view[:got])


def consume(items) -> int:
    count = 0
    for _ in items:
        count += 1
    return count


def drop_cache(path: str) -> None:
    """Evict the file from the page cache (clean pages only; no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def best_of(run: Callable[[], object], repeat: int, cold_path: str = "") -> float:
    times = []
    for _ in range(repeat):
        if cold_path:
            drop_cache(cold_path)
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def loader_batches(dataset, workers: int) -> int:
    return consume(DataLoader(dataset, batch_size=256, num_workers=workers))


def tensorflow_results(path: str, repeat: int) -> dict[str, float]:
    """Time TensorFlow's TF1 record iterator (C++ framing, CRCs checked) and tf.data parsing (graph
    mode). Runs in a fresh process: the ``tfrecord`` package's protos clash with TensorFlow's."""
    import tensorflow as tf

    features = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "floats": tf.io.FixedLenFeature([16], tf.float32),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }
    single = tf.data.TFRecordDataset(path).map(lambda record: tf.io.parse_single_example(record, features))
    batched = tf.data.TFRecordDataset(path).batch(256).map(lambda records: tf.io.parse_example(records, features))
    cases = {
        "(a) framing + CRC: TensorFlow tf_record_iterator": lambda: consume(tf.compat.v1.io.tf_record_iterator(path)),
        "(b) decode: TensorFlow tf.data parse_single_example": lambda: single.reduce(0, lambda n, _: n + 1).numpy(),
        "(b) decode: TensorFlow tf.data parse_example x256": lambda: batched.reduce(0, lambda n, _: n + 1).numpy(),
    }
    return {name: best_of(run, repeat) for name, run in cases.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write the generated file (default: a temp folder)")
    parser.add_argument("--tensorflow", action="store_true", help="add TensorFlow's readers (tensorflow must be installed)")
    args = parser.parse_args()

    from tfrecord.reader import tfrecord_iterator as package_iterator
    from tfrecord.torch.dataset import TFRecordDataset as PackageDataset

    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        path = os.path.join(scratch, "bench.tfrecord")
        generate(path, args.records)
        size_mb = os.path.getsize(path) / 1e6
        ours = TFRecordDataset(path, FEATURES)
        batched = TFRecordDataset(path, FEATURES, batch_size=256)
        package = PackageDataset(path, None, PACKAGE_DESCRIPTION)
        package_split = PackageDataset(path, index_path(path), PACKAGE_DESCRIPTION)  # workers split by the index
        cases = [
            ("ceiling: file to /dev/null", lambda: to_dev_null(path), ""),
            ("(a) framing + CRC checks: loaders", lambda: consume(iter_records(path)), ""),
            ("(a) framing, no CRC: loaders verify=False", lambda: consume(iter_records(path, verify=False)), ""),
            ("(a) framing, no CRC: tfrecord package", lambda: consume(package_iterator(path)), ""),
            ("(b) decode to tensors + CRC: loaders", lambda: consume(ours), ""),
            ("(b) decode to numpy, no CRC: tfrecord package", lambda: consume(package), ""),
            ("(b) decode batches of 256 + CRC: loaders batch_size", lambda: consume(batched), ""),
            ("(c) DataLoader 2 workers: loaders", lambda: loader_batches(ours, 2), ""),
            ("(c) DataLoader 2 workers: loaders batch_size", lambda: consume(DataLoader(batched, None, num_workers=2)), ""),
            ("(c) DataLoader 2 workers: tfrecord package", lambda: loader_batches(package_split, 2), ""),
            ("cold cache: file to /dev/null", lambda: to_dev_null(path), path),
            ("cold cache (a) framing + CRC: loaders", lambda: consume(iter_records(path)), path),
            ("cold cache (b) decode + CRC: loaders", lambda: consume(ours), path),
            ("cold cache (b) decode: tfrecord package", lambda: consume(package), path),
        ]
        results = {name: best_of(run, args.repeat, cold) for name, run, cold in cases}
        if args.tensorflow:
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                results.update(pool.apply(tensorflow_results, (path, args.repeat)))
    loop = "C (loaders.tfrecord._framing)" if tfrecord_format._framing is not None else "pure Python (C loop not built)"
    print(f"{args.records} Examples, {size_mb:.0f} MB, best of {args.repeat}, {os.cpu_count()} CPUs, "
          f"framing loop: {loop}\n")
    print(f"| {'case':52s} | {'seconds':>8s} | {'records/s':>10s} | {'MB/s':>7s} |")
    print(f"|{'-' * 54}|{'-' * 10}:|{'-' * 11}:|{'-' * 8}:|")
    for name, seconds in results.items():
        print(f"| {name:52s} | {seconds:8.3f} | {args.records / seconds:10,.0f} | {size_mb / seconds:7,.0f} |")
    ceiling = results["ceiling: file to /dev/null"]
    framing = results["(a) framing + CRC checks: loaders"]
    decode = results["(b) decode to tensors + CRC: loaders"]
    package_decode = results["(b) decode to numpy, no CRC: tfrecord package"]
    cold = results["cold cache (a) framing + CRC: loaders"] / results["cold cache: file to /dev/null"]
    print(f"\n(a) framing + CRC: {framing / ceiling:.1f}x the warm ceiling's time, {cold:.1f}x the cold one's (target <= 2x)")
    print(f"(b) decode: {package_decode / decode:.1f}x the tfrecord package's speed (target >= 3x)")
    loader = results["(c) DataLoader 2 workers: tfrecord package"] / results["(c) DataLoader 2 workers: loaders"]
    print(f"(c) DataLoader: {loader:.1f}x the tfrecord package's speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
