"""CSV to tensors, side by side: CSVDataset, pandas.read_csv (C engine), pyarrow.csv (when
installed: it is a peer here, not a dependency), Python's csv module and the TF1-style pipeline
(string_input_producer + TextLineReader + decode_csv + batch).

Generates a CSV of ``--rows`` rows (10 float columns and an int label) in a temp folder, and the
same rows as pandas writes them with ``quoting=csv.QUOTE_NONNUMERIC`` (every formatted float and
the header in quotes), then runs every method in a fresh subprocess (best of ``--repeat`` runs)
and prints rows/s and memory: the peak resident set size above the process's size right after
its imports, so that the numbers compare methods, not interpreters. CSVDataset also runs on a
quarter of the file: its memory should not grow with the file. The quoted file is read by
``--quoted-methods``. Run on demand (never in CI):

    python benchmarks/csv_read.py [--rows 1000000] [--methods pandas,csvdataset,...] [--quoted-methods pandas,...]
"""
from __future__ import annotations

import os
import sys

# This file is named csv.py: keep its folder off sys.path so `import csv` finds the stdlib.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Dict, List, Optional  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BATCH = 4096
FEATURES = [f"f{i}" for i in range(10)]
TF1_RECORD_ROWS = 50_000  # the one-record-at-a-time TF1 path is slow: it reads this many rows


def generate(path: Path, rows: int, seed: int = 0, quoting: int = csv.QUOTE_MINIMAL) -> None:
    """Write ``rows`` rows of 10 standard-normal floats and a 0/1 label, via a temp file, quoted
    as pandas' ``to_csv(quoting=...)`` quotes them."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    temp = path.with_suffix(".tmp")
    with open(temp, "w", newline="\n") as handle:
        for start in range(0, rows, 200_000):
            count = min(200_000, rows - start)
            frame = pd.DataFrame(rng.standard_normal((count, 10)).astype(np.float32), columns=FEATURES)
            frame["label"] = rng.integers(0, 2, count)
            frame.to_csv(handle, index=False, header=start == 0, float_format="%.6g", lineterminator="\n",
                         quoting=quoting)
    os.replace(temp, path)


def _memory_kib() -> Dict[str, int]:
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


def run_pandas(path: str) -> int:
    """pandas.read_csv (C engine), then the whole frame to tensors."""
    import numpy as np
    import pandas as pd
    import torch

    frame = pd.read_csv(path, engine="c")
    features = torch.from_numpy(frame[FEATURES].to_numpy(np.float32))
    labels = torch.from_numpy(frame["label"].to_numpy(np.int64))
    assert len(features) == len(labels)
    return len(labels)


def run_pyarrow(path: str) -> int:
    """pyarrow.csv.read_csv (its threads), then the whole table to tensors."""
    import numpy as np
    import pyarrow.csv as pacsv
    import torch

    table = pacsv.read_csv(path)
    features = torch.from_numpy(np.stack([table[name].to_numpy() for name in FEATURES], axis=1).astype(np.float32))
    labels = torch.from_numpy(table["label"].to_numpy().astype(np.int64))
    assert len(features) == len(labels)
    return len(labels)


def run_csvdataset(path: str) -> int:
    """CSVDataset batches of BATCH rows."""
    import loaders

    return sum(len(labels) for _, labels in loaders.CSVDataset(path, label_column="label", batch_size=BATCH))


def run_csvdataset_rows(path: str) -> int:
    """CSVDataset one (features, label) row at a time."""
    import loaders

    return sum(1 for _ in loaders.CSVDataset(path, label_column="label"))


def run_csv_module(path: str) -> int:
    """csv.reader, floats per row, a tensor per BATCH rows."""
    import torch

    rows = 0
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        batch: List[List[float]] = []
        for record in reader:
            batch.append([float(field) for field in record])
            if len(batch) == BATCH:
                rows += len(torch.tensor(batch))
                batch = []
        rows += len(torch.tensor(batch)) if batch else 0
    return rows


def _tf1_pipeline(path: str, read_example: Callable[[Any, Any], Callable[[], list]], enqueue_many: bool) -> int:
    import loaders

    filename_queue = loaders.string_input_producer([path], num_epochs=1, shuffle=False)
    reader = loaders.TextLineReader(skip_header_lines=1)
    batch = loaders.batch(
        read_example(reader, filename_queue), batch_size=BATCH, capacity=4 * BATCH,
        enqueue_many=enqueue_many, allow_smaller_final_batch=True,
    )
    coord = loaders.Coordinator()
    threads = loaders.start_queue_runners(coord=coord)
    rows = 0
    try:
        for features, _labels in batch:
            rows += len(features)
    finally:
        coord.request_stop()
        coord.join(threads)
    return rows


def _decode_many(reader: Any, filename_queue: Any) -> Callable[[], list]:
    import torch

    import loaders

    def read_batch() -> list:
        """Up to BATCH lines of one file, decoded: [features [n, 10], labels [n]]."""
        _, values = reader.read_up_to(filename_queue, BATCH)
        columns = loaders.decode_csv(values, record_defaults=[[0.0]] * 10 + [[0]])
        return [torch.stack(columns[:10], dim=1), columns[10]]

    return read_batch


def _decode_one(reader: Any, filename_queue: Any) -> Callable[[], list]:
    import torch

    import loaders

    def read_example() -> list:
        """One line, decoded: [features [10], label]."""
        _, value = reader.read(filename_queue)
        columns = loaders.decode_csv(value, record_defaults=[[0.0]] * 10 + [[0]])
        return [torch.stack(columns[:10]), columns[10]]

    return read_example


def run_tf1_read_up_to(path: str) -> int:
    """TF1 style: read_up_to + decode_csv on BATCH lines + batch(enqueue_many=True)."""
    return _tf1_pipeline(path, _decode_many, enqueue_many=True)


def run_tf1_read(path: str) -> int:
    """TF1 style as in the lecture: read + decode_csv per line + batch."""
    return _tf1_pipeline(path, _decode_one, enqueue_many=False)


METHODS: Dict[str, Callable[[str], int]] = {
    "pandas": run_pandas,
    "pyarrow": run_pyarrow,
    "csvdataset": run_csvdataset,
    "csvdataset_rows": run_csvdataset_rows,
    "csv_module": run_csv_module,
    "tf1_read_up_to": run_tf1_read_up_to,
    "tf1_read": run_tf1_read,
}


def measure(method: str, path: str, repeat: int) -> None:
    """Child process: import, run one method ``repeat`` times, print a JSON line with the best
    time and the peak memory growth."""
    import numpy  # noqa: F401  (imports happen before the baseline memory reading)
    import pandas  # noqa: F401
    import torch  # noqa: F401

    import loaders  # noqa: F401

    base = _memory_kib()["VmRSS"]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        rows = METHODS[method](path)
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"rows": rows, "seconds": best, "growth_kib": _memory_kib()["VmHWM"] - base}))


def _child(method: str, path: Path, repeat: int) -> Dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, __file__, "--child", method, "--path", str(path), "--repeat", str(repeat)],
        check=True, capture_output=True, text=True, env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _head(source: Path, target: Path, rows: int) -> Path:
    with open(source, "rb") as infile, open(target, "wb") as outfile:
        for _ in range(rows + 1):
            outfile.write(infile.readline())
    return target


def _table(runs: List[tuple]) -> None:
    """The results as a Markdown table, rows/s against pandas on the same file."""
    pandas_rate = {quoted: next((r["rows"] / r["seconds"] for m, r in runs if m == "pandas" + quoted), None)
                   for quoted in ("", " (QUOTE_NONNUMERIC)")}
    print("\n| method | rows | seconds | rows/s | vs pandas | peak memory growth (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for method, r in runs:
        rate = r["rows"] / r["seconds"]
        peer = pandas_rate[" (QUOTE_NONNUMERIC)" if method.endswith(" (QUOTE_NONNUMERIC)") else ""]
        ratio = f"{rate / peer:.2f}x" if peer else "-"
        memory = r["growth_kib"] / 1024
        print(f"| {method} | {r['rows']:,} | {r['seconds']:.2f} | {rate:,.0f} | {ratio} | {memory:.0f} |")


def main(argv: Optional[List[str]] = None) -> int:
    """Generate the data, run each method in its own process, print the table."""
    parser = argparse.ArgumentParser(description="CSV to tensors: rows/s and memory per method")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--quoted-methods", default="pandas,pyarrow,csvdataset,tf1_read_up_to",
                        help="methods run on the QUOTE_NONNUMERIC file too ('' for none)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the best time is reported")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        measure(args.child, args.path, args.repeat)
        return 0
    missing = [] if importlib.util.find_spec("pyarrow") else ["pyarrow"]
    with tempfile.TemporaryDirectory() as folder:
        data, quoted = Path(folder) / "bench.csv", Path(folder) / "quoted.csv"
        started = time.perf_counter()
        generate(data, args.rows)
        size_mb = data.stat().st_size / 2**20
        print(f"generated {args.rows} rows ({size_mb:.0f} MiB) in {time.perf_counter() - started:.1f}s")
        small = _head(data, Path(folder) / "quarter.csv", args.rows // 4)
        tf1_rows = _head(data, Path(folder) / "tf1_sample.csv", min(args.rows, TF1_RECORD_ROWS))
        runs = []
        for method in (m for m in args.methods.split(",") if m not in missing):
            path = tf1_rows if method == "tf1_read" else data
            runs.append((method, _child(method, path, args.repeat)))
            if method == "csvdataset":
                runs.append(("csvdataset (1/4 file)", _child(method, small, args.repeat)))
        quoted_methods = [m for m in args.quoted_methods.split(",") if m and m not in missing]
        if quoted_methods:
            generate(quoted, args.rows, quoting=csv.QUOTE_NONNUMERIC)
            runs.extend((f"{method} (QUOTE_NONNUMERIC)", _child(method, quoted, args.repeat))
                        for method in quoted_methods)
        _table(runs)
        if missing:
            print(f"\nleft out, not installed: {', '.join(missing)} (pip install {' '.join(missing)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
