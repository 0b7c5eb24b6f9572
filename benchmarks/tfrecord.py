"""TFRecord reading speed, side by side with the ``tfrecord`` package, TensorFlow and the ceilings.

    python benchmarks/tfrecord.py [--records 100000] [--repeat 5] [--dir DIR] [--tensorflow] [--cases TEXT...]

Generates a file of Examples (a 2 KB bytes feature, 16 floats, an int64 label; ~220 MB for 100k
records) and its index, and prints records/s and MB/s for: reading the file to /dev/null (the
ceiling), (a) framing with CRC checks, (b) decoding in this process, record by record and in
batches of 256, (c) DataLoaders with 2 workers (each reads half of the file, found through the
index): PyTorch's ``DataLoader`` and ``SharedMemoryDataLoader``, records collated into batches of
256 (which ``SharedMemoryDataLoader``'s workers decode a batch at a time, ``TFRecordDataset.batched``)
and the dataset's own batches of 256, with and without the bytes feature, and the ceiling of
2 processes that decode a half each with nothing crossing; plus cold-cache rows (the file's
pages dropped with ``posix_fadvise``). The cases run in turn, ``--repeat`` rounds, and each row
is the best round, so that a load that comes and goes on a shared machine weighs on all rows
alike; the load average is printed. ``--tensorflow`` adds TensorFlow's rows, run by its own
interpreter (``LOADERS_TF_PYTHON``, else ``.venv-tf``, as the oracle tests find it): when it is
missing or fails, only those rows are lost. ``--cases`` keeps the rows whose name contains one
of the texts. The ``tfrecord`` package never checks CRCs.
"""
from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import sys
import tempfile
import time
from typing import Callable, Iterator, Optional

import numpy as np
import torch
import torch.multiprocessing
from torch.utils.data import DataLoader

# This file is named tfrecord.py: keep its folder off sys.path so `import tfrecord` finds the package.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.tf_side import run_tensorflow  # noqa: E402
from loaders.loader import SharedMemoryDataLoader  # noqa: E402
from loaders.sharding import Shard  # noqa: E402
from loaders.tfrecord import FixedLenFeature, TFRecordDataset, TFRecordWriter, collate_ragged, index_path  # noqa: E402
from loaders.tfrecord import dataset as dataset_module, format as tfrecord_format, iter_records  # noqa: E402

FEATURES = {
    "image": FixedLenFeature([], "string"),
    "floats": FixedLenFeature([16], torch.float32),
    "label": FixedLenFeature([], torch.int64),
}
NO_BYTES = {key: spec for key, spec in FEATURES.items() if key != "image"}
PACKAGE_DESCRIPTION = {"image": "byte", "floats": "float", "label": "int"}
WORKERS, BATCH = 2, 256


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


def with_strategy(strategy: str, run: Callable[[], object]) -> Callable[[], object]:
    """``run`` under torch.multiprocessing's tensor sharing strategy ``strategy``."""
    def timed() -> object:
        before = torch.multiprocessing.get_sharing_strategy()
        torch.multiprocessing.set_sharing_strategy(strategy)
        try:
            return run()
        finally:
            torch.multiprocessing.set_sharing_strategy(before)
    return timed


def _decode_share(path: str, features: dict, batch_size: Optional[int], index: int) -> None:
    dataset_module.current_shard = lambda: Shard(index, WORKERS)  # this process reads share `index`
    consume(TFRecordDataset(path, features, batch_size=batch_size))


def collated(records) -> Iterator:
    """What a DataLoader with ``batch_size=256`` does with the records, in this process."""
    items = iter(records)
    while chunk := list(itertools.islice(items, BATCH)):
        yield collate_ragged(chunk)


def two_processes(path: str, features: dict, batch_size: Optional[int]) -> int:
    """The ceiling of 2 workers: 2 processes each decode their half of the file; nothing crosses."""
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_decode_share, args=(path, features, batch_size, i)) for i in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    return 0


def cases(path: str) -> list[tuple[str, Callable[[], object], str]]:
    """``(name, run, path to drop from the cache first or "")`` for every row measured here."""
    from tfrecord.reader import tfrecord_iterator as package_iterator
    from tfrecord.torch.dataset import TFRecordDataset as PackageDataset

    records, batches = TFRecordDataset(path, FEATURES), TFRecordDataset(path, FEATURES, batch_size=BATCH)
    records_nb, batches_nb = TFRecordDataset(path, NO_BYTES), TFRecordDataset(path, NO_BYTES, batch_size=BATCH)
    package = PackageDataset(path, None, PACKAGE_DESCRIPTION)
    package_split = PackageDataset(path, index_path(path), PACKAGE_DESCRIPTION)  # workers split by the index
    torch_loader, ours = (lambda ds, **kw: consume(DataLoader(ds, num_workers=WORKERS, **kw))), \
        (lambda ds, **kw: consume(SharedMemoryDataLoader(ds, num_workers=WORKERS, **kw)))
    c = "(c) 2 workers, records -> batches of 256:"
    b = "(c) 2 workers, batches of 256:"
    return [
        ("ceiling: file to /dev/null", lambda: to_dev_null(path), ""),
        ("(a) framing + CRC checks: loaders", lambda: consume(iter_records(path)), ""),
        ("(a) framing, no CRC: loaders verify=False", lambda: consume(iter_records(path, verify=False)), ""),
        ("(a) framing, no CRC: tfrecord package", lambda: consume(package_iterator(path)), ""),
        ("(b) in-process, records: loaders", lambda: consume(records), ""),
        ("(b) in-process, records, no bytes feature: loaders", lambda: consume(records_nb), ""),
        ("(b) in-process, records: tfrecord package (no CRC)", lambda: consume(package), ""),
        ("(b) in-process, records -> batches of 256: loaders + collate_ragged",
         lambda: consume(collated(records)), ""),
        ("(b) in-process, batches of 256: loaders", lambda: consume(batches), ""),
        ("(b) in-process, batches of 256, no bytes feature: loaders", lambda: consume(batches_nb), ""),
        (f"{c} DataLoader", lambda: torch_loader(records, batch_size=BATCH), ""),
        (f"{c} DataLoader collate_ragged", lambda: torch_loader(records, batch_size=BATCH, collate_fn=collate_ragged), ""),
        (f"{c} SharedMemoryDataLoader", lambda: ours(records, batch_size=BATCH), ""),
        (f"{c} SharedMemoryDataLoader, no bytes", lambda: ours(records_nb, batch_size=BATCH), ""),
        (f"{c} tfrecord package, DataLoader", lambda: torch_loader(package_split, batch_size=BATCH), ""),
        (f"{c} ceiling, 2 processes, nothing crosses", lambda: two_processes(path, FEATURES, None), ""),
        (f"{b} DataLoader", lambda: torch_loader(batches, batch_size=None), ""),
        (f"{b} DataLoader file_system", with_strategy("file_system", lambda: torch_loader(batches, batch_size=None)), ""),
        (f"{b} SharedMemoryDataLoader", lambda: ours(batches, batch_size=None), ""),
        (f"{b} DataLoader, no bytes", lambda: torch_loader(batches_nb, batch_size=None), ""),
        (f"{b} SharedMemoryDataLoader, no bytes", lambda: ours(batches_nb, batch_size=None), ""),
        (f"{b} ceiling, 2 processes, nothing crosses", lambda: two_processes(path, FEATURES, BATCH), ""),
        ("cold cache: file to /dev/null", lambda: to_dev_null(path), path),
        ("cold cache (a) framing + CRC: loaders", lambda: consume(iter_records(path)), path),
        ("cold cache (b) in-process, records: loaders", lambda: consume(records), path),
        ("cold cache (b) in-process, records: tfrecord package", lambda: consume(package), path),
    ]


def measure(chosen: list, repeat: int) -> dict[str, float]:
    """Every case once per round, ``repeat`` rounds; the best time of each."""
    best = {name: float("inf") for name, _, _ in chosen}
    for _ in range(repeat):
        for name, run, cold in chosen:
            if cold:
                drop_cache(cold)
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def ratios(results: dict[str, float]) -> list[str]:
    """The target lines, for the rows that were measured."""
    c = "(c) 2 workers, records -> batches of 256:"
    b = "(c) 2 workers, batches of 256:"
    lines = []
    for label, fast, slow, target in [
        ("(a) framing + CRC, its time over the warm ceiling's", "ceiling: file to /dev/null",
         "(a) framing + CRC checks: loaders", "<= 2x"),
        ("(b) records, loaders vs the tfrecord package", "(b) in-process, records: loaders",
         "(b) in-process, records: tfrecord package (no CRC)", ">= 3x"),
        ("(c) records, SharedMemoryDataLoader vs in-process", f"{c} SharedMemoryDataLoader",
         "(b) in-process, records: loaders", ">= 1.0x"),
        ("(c) batches, SharedMemoryDataLoader vs in-process", f"{b} SharedMemoryDataLoader",
         "(b) in-process, batches of 256: loaders", ">= 1.5x"),
        ("(c) records, SharedMemoryDataLoader vs in-process records + collate_ragged", f"{c} SharedMemoryDataLoader",
         "(b) in-process, records -> batches of 256: loaders + collate_ragged", ""),
        ("(c) records, 2-process ceiling vs in-process", f"{c} ceiling, 2 processes, nothing crosses",
         "(b) in-process, records: loaders", ""),
        ("(c) batches, 2-process ceiling vs in-process", f"{b} ceiling, 2 processes, nothing crosses",
         "(b) in-process, batches of 256: loaders", ""),
        ("(c) records, SharedMemoryDataLoader vs DataLoader", f"{c} SharedMemoryDataLoader", f"{c} DataLoader", ""),
        ("(c) batches, SharedMemoryDataLoader vs DataLoader", f"{b} SharedMemoryDataLoader", f"{b} DataLoader", ""),
    ]:
        if fast in results and slow in results:
            ratio = results[slow] / results[fast]
            lines.append(f"{label}: {ratio:.2f}x" + (f" (target {target})" if target else ""))
    return lines


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to write the generated file (default: a temp folder)")
    parser.add_argument("--tensorflow", action="store_true", help="add TensorFlow's rows (its own interpreter)")
    parser.add_argument("--cases", nargs="*", default=None, help="keep only the rows whose name contains one of these")
    args = parser.parse_args(argv)

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        path = os.path.join(scratch, "bench.tfrecord")
        generate(path, args.records)
        size_mb = os.path.getsize(path) / 1e6
        chosen = [case for case in cases(path) if not args.cases or any(text in case[0] for text in args.cases)]
        results = measure(chosen, args.repeat)
        missing = ""
        if args.tensorflow:
            found, missing = run_tensorflow(["tfrecord", path, args.repeat], timeout=600 + 60 * args.repeat)
            results.update({name: seconds for name, seconds in found.items()
                            if not args.cases or any(text in name for text in args.cases)})
    loop = "C (loaders.tfrecord._framing)" if tfrecord_format._framing is not None else "pure Python (C loop not built)"
    print(f"{args.records} Examples, {size_mb:.0f} MB, best of {args.repeat} interleaved rounds, {os.cpu_count()} CPUs, "
          f"load average {load:.1f} before and {os.getloadavg()[0]:.1f} after, framing loop: {loop}\n")
    width = max([len(name) for name in results] + [4])
    print(f"| {'case':{width}s} | {'seconds':>8s} | {'records/s':>10s} | {'MB/s':>7s} |")
    print(f"|{'-' * (width + 2)}|{'-' * 9}:|{'-' * 11}:|{'-' * 8}:|")
    for name, seconds in sorted(results.items(), key=lambda item: _order(item[0])):
        print(f"| {name:{width}s} | {seconds:8.3f} | {args.records / seconds:10,.0f} | {size_mb / seconds:7,.0f} |")
    if missing:
        print(f"\nTensorFlow rows left out: {missing}")
    print("\n" + "\n".join(ratios(results)))
    return 0


def _order(name: str) -> tuple:
    """Rows grouped by their letter, TensorFlow's beside ours, cold-cache rows last."""
    group = name.removeprefix("cold cache ").split(")")[0] if "(" in name else ""
    return name.startswith("cold cache"), group, "TensorFlow" in name, ""


if __name__ == "__main__":
    raise SystemExit(main())
