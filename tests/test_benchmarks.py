"""The benchmark scripts: TensorFlow's rows come from its own interpreter, and a missing or
failing TensorFlow costs those rows only (checked on tiny inputs, never as timing gates)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("python, why", [
    ("/nonexistent/python", "/nonexistent/python: "),
    (sys.executable, "exited with status 1: ModuleNotFoundError: No module named 'tensorflow'"),
])
def test_a_missing_or_failing_tensorflow_is_reported_not_raised(monkeypatch, python, why):
    from benchmarks.tf_side import run_tensorflow

    monkeypatch.setenv("LOADERS_TF_PYTHON", python)
    results, problem = run_tensorflow(["tfrecord", "/nonexistent.tfrecord", 1], timeout=120)
    assert results == {} and why in problem


def test_tfrecord_benchmark_prints_its_table_without_tensorflow(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("LOADERS_TF_PYTHON", "/nonexistent/python")
    benchmark = load("tfrecord")
    assert benchmark.main(["--records", "40", "--repeat", "1", "--dir", str(tmp_path), "--tensorflow",
                           "--cases", "ceiling: file", "framing + CRC checks"]) == 0
    out = capsys.readouterr().out
    assert "| ceiling: file to /dev/null " in out and "| (a) framing + CRC checks: loaders " in out
    assert "TensorFlow rows left out: /nonexistent/python: " in out
    assert "(a) framing + CRC, its time over the warm ceiling's: " in out


@pytest.mark.slow
def test_csv_benchmark_reads_the_quoted_file_next_to_its_peers(capsys):
    benchmark = load("csv_read")
    assert benchmark.main(["--rows", "300", "--repeat", "1", "--methods", "pandas",
                           "--quoted-methods", "pyarrow,csvdataset"]) == 0
    out = capsys.readouterr().out
    assert "| pandas | 300 | " in out and "| csvdataset (QUOTE_NONNUMERIC) | 300 | " in out
    peer = "| pyarrow (QUOTE_NONNUMERIC) | 300 | " if importlib.util.find_spec("pyarrow") else "not installed: pyarrow"
    assert peer in out


@pytest.mark.slow
def test_remote_benchmark_prints_its_rows_on_a_tiny_file():
    import subprocess

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "remote.py"), "--records", "50", "--repeat", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for row in ("S3 (moto)   raw read (fsspec)", "S3 (moto)   iter_records", "HTTP        TFRecordDataset"):
        assert row in done.stdout


@pytest.mark.slow
def test_images_benchmark_runs_as_a_script_next_to_the_tfrecord_package(tmp_path):
    import subprocess

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "images.py"), "--images", "24", "--batch", "4",
                           "--repeat", "1", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "tfrecord package" in done.stdout and "ceiling" in done.stdout
