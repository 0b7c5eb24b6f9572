"""The torchstyle command line: end to end with a saved state_dict; one clear line per bad input."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from torchstyle.run import main
from torchstyle.vgg import VGGFeatures

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["--style-layers", "conv1_1,conv2_1", "--content-layers", "conv2_2"]


@pytest.fixture
def files(tmp_path):
    """A content and a style picture and a VGG state_dict file holding the layers the CLI uses."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), np.uint8)).save(tmp_path / "content.png")
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), np.uint8)).convert("P").save(
        tmp_path / "style.png")
    torch.manual_seed(0)
    torch.save(VGGFeatures(["conv2_2"], weights=None).state_dict(), tmp_path / "vgg.pth")
    return tmp_path


def _args(folder: Path, *extra: str, output: str = "out.png",
          styles: tuple[str, ...] = ("style.png",)) -> list[str]:
    return [str(folder / "content.png"), *(str(folder / s) for s in styles),
            "-o", str(folder / output), "--weights", str(folder / "vgg.pth"),
            "--size", "32", "--steps", "4", "--device", "cpu", *LAYERS, *extra]


def test_cli_end_to_end_writes_a_valid_image(files):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "torchstyle.run", *_args(files, output="out.jpg")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with Image.open(files / "out.jpg") as picture:
        assert picture.format == "JPEG" and picture.size == (32, 24)
    assert "wrote" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in files.iterdir()) == ["content.png", "out.jpg", "style.png",
                                                        "vgg.pth"]


def test_cli_options_snapshots_and_several_styles(files, capsys):
    status = main(_args(files, "--style-blend", "3,1", "--save-every", "4", "--original-colors",
                        "--layer-weights", "deeper", "--init", "mix", "--seed", "1", "--pooling",
                        "avg", "--lbfgs-history", "5", "--quiet", "--steps", "12",
                        styles=("style.png", "content.png")))
    assert status == 0
    # zero-padded so they sort; none at step 12, which is the output itself
    assert sorted(p.name for p in files.iterdir() if p.name.startswith("out")) == [
        "out.png", "out_04.png", "out_08.png"]
    assert capsys.readouterr().err == ""


def _fails(capsys, argv) -> str:
    """Run the CLI expecting a user error: exit 1, one error line on stderr, no traceback."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith("torchstyle: error: ") and err.count("torchstyle: error:") == 1, err
    assert "Traceback" not in err
    return last


def test_missing_non_image_and_truncated_inputs(files, capsys):
    args = _args(files)
    assert "missing.png does not exist" in _fails(capsys, [str(files / "missing.png"), *args[1:]])
    (files / "notes.png").write_text("hello")
    assert "notes.png is not an image file" in _fails(capsys, [str(files / "notes.png"), *args[1:]])
    data = (files / "content.png").read_bytes()
    (files / "cut.png").write_bytes(data[: len(data) // 2])
    assert "cut.png is damaged or truncated" in _fails(capsys, [str(files / "cut.png"), *args[1:]])


def test_bad_outputs_are_refused(files, capsys):
    assert "does not exist; create it first" in _fails(capsys, _args(files, output="no/out.png"))
    assert "is also an input image" in _fails(capsys, _args(files, output="style.png"))
    assert "unknown image extension" in _fails(capsys, _args(files, output="out.xyz"))


def test_bad_layers_weights_and_sizes(files, capsys):
    assert "valid layers are" in _fails(capsys, _args(files, "--style-layers", "conv9_9"))
    assert "does not exist" in _fails(capsys, _args(files, "--weights", str(files / "none.pth")))
    assert "use a smaller --size" in _fails(capsys, _args(files, "--size", "500000"))


def test_failed_download_prints_what_to_do(files, capsys, monkeypatch):
    def refuse(url, dst, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(files / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    args = [a for a in _args(files) if a not in ("--weights", str(files / "vgg.pth"))]
    err = _fails(capsys, args)
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in err
    assert str(files / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in err and "--weights" in err


def _usage_error(capsys, argv) -> str:
    """Run the CLI expecting a bad argument: exit 2, one line on stderr, no traceback."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("torchstyle: error: "), err
    return err


def test_files_that_are_not_checkpoints_are_one_line_errors(files, capsys):
    (files / "text.pth").write_text("hello world, not a checkpoint\n" * 5)
    (files / "pickle.pth").write_bytes(b"\x80\x02}q\x00garbage" * 10)
    for name in ("text.pth", "pickle.pth"):
        line = _fails(capsys, _args(files, "--weights", str(files / name)))
        assert f"{name} is not a PyTorch state_dict file" in line


def test_unknown_device_is_refused_by_name(files, capsys):
    assert "unknown device 'tpu9'" in _fails(capsys, _args(files, "--device", "tpu9"))


def test_bad_numbers_are_refused_before_any_work(files, capsys):
    assert "--steps: must be at least 0, got -5" in _usage_error(capsys, _args(files, "--steps", "-5"))
    assert "--size: must be at least 0, got -3" in _usage_error(capsys, _args(files, "--size", "-3"))
    assert "--size: expected a whole number" in _usage_error(capsys, _args(files, "--size", "big"))
    assert "--save-every" in _usage_error(capsys, _args(files, "--save-every", "-1"))
    assert "--lbfgs-history" in _usage_error(capsys, _args(files, "--lbfgs-history", "0"))
    assert not (files / "out.png").exists()


def test_size_zero_keeps_the_content_size_and_tiny_sizes_are_stretched(files):
    assert main(_args(files, "--size", "0", "--steps", "1", "--quiet")) == 0
    with Image.open(files / "out.png") as picture:
        assert picture.size == (40, 30)
    assert main(_args(files, "--size", "3", "--steps", "1", "--quiet")) == 0
    with Image.open(files / "out.png") as picture:  # conv2_2 needs 2 pixels after one pooling
        assert min(picture.size) >= 2


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, a folder nobody can write")
def test_unwritable_output_folder_is_named_before_optimizing(files, capsys):
    line = _fails(capsys, _args(files, "--steps", "1000000", output="/proc/out.png"))
    assert "output folder /proc is not writable" in line and ".tmp" not in line
