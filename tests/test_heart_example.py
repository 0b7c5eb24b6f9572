"""examples/heart_csv.py runs end to end (both styles) on the shipped sample and on the real
heart.csv when ../shared/data has it; the sample is exactly what its generator writes."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "heart_csv.py"
SAMPLE = ROOT / "examples" / "data" / "heart_sample.csv"


def run_example(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def accuracies(output, style):
    return [float(value) for value in re.findall(rf"\[{style}\] .*accuracy (\d\.\d+)", output)]


def losses(output, style):
    return [float(value) for value in re.findall(rf"\[{style}\] .*loss (\d+\.\d+)", output)]


def test_example_trains_both_styles_on_the_sample():
    output = run_example("--epochs", "3")
    assert f"key {SAMPLE}:2  value " in output  # the lecture's first record, line 2 after the header
    assert "[tf1] done: 3 epochs read, 600 records" in output
    assert len(accuracies(output, "pytorch")) == 3 and accuracies(output, "tf1")
    assert all(0.0 <= value <= 1.0 for value in accuracies(output, "pytorch") + accuracies(output, "tf1"))
    assert losses(output, "pytorch")[-1] < losses(output, "pytorch")[0]  # it learns


def test_example_on_the_real_heart_csv(shared_data):
    heart = shared_data / "heart.csv"
    if not heart.exists():
        import pytest

        pytest.skip(f"{heart} is not present")
    output = run_example(str(heart), "--epochs", "3")
    assert f"key {heart}:2  value " in output
    assert losses(output, "pytorch")[-1] < losses(output, "pytorch")[0]
    assert 0.0 < accuracies(output, "pytorch")[-1] <= 1.0 and accuracies(output, "tf1")


def test_shipped_sample_is_what_the_generator_writes(tmp_path):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import make_heart_sample
    finally:
        sys.path.remove(str(ROOT / "examples"))
    generated = make_heart_sample.write_sample(tmp_path / "heart_sample.csv")
    assert generated.read_bytes() == SAMPLE.read_bytes()
    header = SAMPLE.read_text().splitlines()[0]
    assert header == "sbp,tobacco,ldl,adiposity,famhist,typea,obesity,alcohol,age,chd"
