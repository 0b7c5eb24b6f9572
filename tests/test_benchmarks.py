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


WINDOWS_SIDE = """
import importlib.util, json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
spec = importlib.util.spec_from_file_location("tf_side", sys.argv[1])
tf_side = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tf_side)
tf.random.set_seed(0)
shapes, draws = json.loads(sys.argv[2]), int(sys.argv[3])
print(json.dumps({
    "torchvision": [[tf_side.torchvision_window(tf, shape).numpy().tolist() for _ in range(draws)] for shape in shapes],
    "tf": [[tf_side.tf_window(tf, shape + [3]).numpy().tolist() for _ in range(draws)] for shape in shapes],
    "fallback": tf_side.torchvision_window(tf, [100, 400], scale=(1.5, 2.0)).numpy().tolist(),
    "tall_fallback": tf_side.torchvision_window(tf, [400, 100], scale=(1.5, 2.0)).numpy().tolist(),
}))
"""


@pytest.mark.slow
def test_tf_datas_rows_can_draw_the_crop_windows_of_torchvisions_random_resized_crop():
    """The images benchmark compares tf.data decoding windows of the sizes ours decode: its TF
    version of RandomResizedCrop.get_params draws areas and shapes as torchvision's does (and TF's
    own sampler does not), inside the image, with torchvision's central fallback."""
    import json

    import numpy as np
    import torch
    from torchvision.transforms import RandomResizedCrop

    sys.path.insert(0, str(ROOT / "tests" / "tf_oracle"))
    from tf_interpreter import run_tensorflow
    shapes, draws = [[300, 500], [512, 256], [400, 400]], 700
    printed = run_tensorflow(WINDOWS_SIDE, ROOT / "benchmarks" / "tf_side.py", json.dumps(shapes), draws)
    drawn = json.loads(printed.strip().splitlines()[-1])

    torch.manual_seed(0)
    for index, (height, width) in enumerate(shapes):
        image = torch.empty(1).expand(3, height, width)
        ours = np.array([RandomResizedCrop.get_params(image, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(draws)])
        for name in ("torchvision", "tf"):
            boxes = np.array(drawn[name][index])
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] > 0).all()
            assert (boxes[:, 0] + boxes[:, 2] <= height).all() and (boxes[:, 1] + boxes[:, 3] <= width).all()
        areas = {name: np.array(drawn[name][index])[:, 2:].prod(1) / (height * width) for name in ("torchvision", "tf")}
        expected = ours[:, 2:].prod(1) / (height * width)
        deciles = np.linspace(0.1, 0.9, 9)
        assert np.abs(np.quantile(areas["torchvision"], deciles) - np.quantile(expected, deciles)).max() < 0.06
        assert abs(areas["torchvision"].mean() - expected.mean()) < 0.03
        assert expected.mean() - areas["tf"].mean() > 0.03  # TF's sampler draws smaller windows
        shape = lambda boxes: np.log(boxes[:, 3] / boxes[:, 2])  # noqa: E731
        assert abs(shape(np.array(drawn["torchvision"][index])).mean() - shape(ours).mean()) < 0.03
    for key, (height, width) in (("fallback", (100, 400)), ("tall_fallback", (400, 100))):
        central = RandomResizedCrop.get_params(torch.empty(1).expand(3, height, width), [1.5, 2.0], [3 / 4, 4 / 3])
        assert drawn[key] == list(central)
