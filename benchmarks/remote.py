"""Remote TFRecord reading speed: a local S3 server (moto) and an HTTP server, next to fsspec's raw
sequential read of the same object (the ceiling) and the local file.

    python benchmarks/remote.py [--records 20000] [--repeat 3]

Builds the README's TFRecord benchmark file (benchmarks/tfrecord.py: a 2 KB bytes feature, 16
floats, an int64 label per Example; ~44 MB for 20k records), uploads it to a moto S3 server and
serves it from an HTTP server with range requests, both on 127.0.0.1 in a process of their own
(tests/servers.py), and prints records/s and MB/s, best of ``--repeat`` rounds, for: the raw
read (``fs.open(..., block_size=loaders.files.BLOCK_SIZE)`` read to its end), framing with CRC
checks (``iter_records``) and decoding in batches of 256 (``TFRecordDataset``), and the ratio
of framing to the raw read (target: at least 0.8).
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Optional

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import fsspec  # noqa: E402

from benchmarks.tfrecord import FEATURES, generate  # noqa: E402
from loaders import files  # noqa: E402
from loaders.tfrecord import TFRecordDataset, iter_records  # noqa: E402
from servers import FileServer, start_moto  # noqa: E402


def raw_read(url: str, options: Optional[dict]) -> int:
    """Read the object to its end through fsspec's own file, in blocks; the records are not counted."""
    fs, path = files.filesystem(url, options)
    with fs.open(path, "rb", block_size=files.BLOCK_SIZE) as f:
        while f.read(files.BLOCK_SIZE):
            pass
    return 0


def framed(url: str, options: Optional[dict]) -> int:
    return sum(1 for _ in iter_records(url, storage_options=options))


def decoded(url: str, options: Optional[dict]) -> int:
    return sum(len(batch["label"]) for batch in TFRecordDataset(url, FEATURES, batch_size=256, storage_options=options))


def best(run: Callable[[], int], repeat: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = run()
        times.append(time.perf_counter() - start)
    return min(times), count


def serve(path: str, ready: "multiprocessing.connection.Connection", stop: "multiprocessing.synchronize.Event") -> None:
    """In a process of its own (as a real store is elsewhere): moto holding ``path`` as
    s3://bench/bench.tfrecord and the HTTP server holding it as /bench.tfrecord, until ``stop``."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with open(path, "rb") as f:
        data = f.read()
    moto, options = start_moto()
    s3 = fsspec.filesystem("s3", **options)
    s3.mkdir("bench")
    s3.pipe("bench/bench.tfrecord", data)
    http = FileServer()
    http.files["/bench.tfrecord"] = data
    ready.send((options, http.url("/bench.tfrecord")))
    stop.wait()
    http.stop()
    moto.stop()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp()
    local = os.path.join(folder, "bench.tfrecord")
    generate(local, args.records)
    size = os.path.getsize(local)
    context = multiprocessing.get_context("spawn")
    ready, child_end = context.Pipe()
    stop = context.Event()
    server = context.Process(target=serve, args=(local, child_end, stop), daemon=True)
    server.start()
    options, http_url = ready.recv()
    places = [("local file", local, None), ("S3 (moto)", "s3://bench/bench.tfrecord", options), ("HTTP", http_url, None)]
    print(f"{args.records} records, {size / 1e6:.1f} MB, block {files.BLOCK_SIZE >> 20} MiB, best of {args.repeat}, "
          f"load average {os.getloadavg()[0]:.2f}; servers in another process")
    print(f"{'where':<11} {'read':<26} {'records/s':>11} {'MB/s':>8} {'x raw':>6}")
    try:
        for where, url, opts in places:
            raw = None
            for name, run in (("raw read (fsspec)", raw_read), ("iter_records (CRC checked)", framed),
                              ("TFRecordDataset, batch 256", decoded)):
                if where == "local file" and run is raw_read:
                    continue
                seconds, count = best(lambda: run(url, opts), args.repeat)
                raw = seconds if run is raw_read else raw
                rate = f"{args.records / seconds:>11,.0f}" if run is not raw_read else f"{'':>11}"
                ratio = f"{raw / seconds:>6.2f}" if raw and run is not raw_read else f"{'':>6}"
                assert run is raw_read or count == args.records, (name, count)
                print(f"{where:<11} {name:<26} {rate} {size / seconds / 1e6:>8.0f} {ratio}")
    finally:
        stop.set()
        server.join()
        shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
