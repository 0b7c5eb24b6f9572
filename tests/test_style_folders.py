"""Many images: a folder or glob in, a folder out, resumable, split across ranks, frames chained."""
from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import torchstyle
from torchstyle.folders import rank_and_world, shard, snapshot_path
from torchstyle.run import main
from torchstyle.vgg import VGGFeatures

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["--style-layers", "conv1_1,conv2_1", "--content-layers", "conv2_2"]


@pytest.fixture
def frames(tmp_path):
    """Five frames (four 30x40, one 20x20), a style picture and a VGG state_dict."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(4):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), np.uint8)).save(folder / f"f{index}.png")
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), np.uint8)).save(folder / "square.jpg")
    (folder / "notes.txt").write_text("not an image, not listed")
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), np.uint8)).save(tmp_path / "style.png")
    torch.manual_seed(0)
    torch.save(VGGFeatures(["conv2_2"], weights=None).state_dict(), tmp_path / "vgg.pth")
    return tmp_path


def _args(root: Path, content: str, output: str, *extra: str) -> list[str]:
    return [content, str(root / "style.png"), "-o", output, "--weights", str(root / "vgg.pth"),
            "--size", "32", "--steps", "2", "--device", "cpu", *LAYERS, *extra]


def _written(err: str) -> list[str]:
    return re.findall(r"wrote (\S+) ", err)


def test_a_folder_in_a_folder_out_with_traces(frames, capsys):
    out = frames / "out"
    assert main(_args(frames, str(frames / "frames"), str(out), "--batch-size", "3", "--trace")) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["f0.png", "f1.png", "f2.png", "f3.png", "square.png",
                            "f0.json", "f1.json", "f2.json", "f3.json", "square.json"])
    with Image.open(out / "f0.png") as picture, Image.open(out / "square.png") as square:
        assert picture.size == (32, 24) and square.size == (32, 32)
    trace = json.loads((out / "f2.json").read_text())
    assert trace["content"].endswith("f2.png") and trace["options"]["steps"] == 2
    assert [row["step"] for row in trace["steps"]] == [1, 2]
    assert set(trace["steps"][0]) == {"step", "size", "content", "style", "tv", "total"}
    assert isinstance(trace["steps"][0]["total"], float)
    assert len(_written(capsys.readouterr().err)) == 5


def test_same_size_images_go_in_batches(frames, monkeypatch):
    shapes = []
    original = torchstyle.StyleTransfer.__call__

    def spy(self, content, style, **options):
        shapes.append(tuple(content.shape))
        return original(self, content, style, **options)

    monkeypatch.setattr(torchstyle.StyleTransfer, "__call__", spy)
    assert main(_args(frames, str(frames / "frames" / "*.png"), str(frames / "out"),
                      "--batch-size", "3", "--quiet")) == 0
    assert shapes == [(3, 3, 24, 32), (1, 3, 24, 32)]  # the glob leaves out square.jpg


def test_skip_existing_resumes_a_killed_run(frames, capsys):
    out = frames / "out"
    out.mkdir()
    Image.new("RGB", (5, 5)).save(out / "f1.png")
    before = (out / "f1.png").read_bytes()
    assert main(_args(frames, str(frames / "frames"), str(out), "--skip-existing")) == 0
    err = capsys.readouterr().err
    assert "skipping 1 of 5 images whose output exists" in err
    assert sorted(Path(p).name for p in _written(err)) == ["f0.png", "f2.png", "f3.png", "square.png"]
    assert (out / "f1.png").read_bytes() == before


def test_two_ranks_do_each_image_exactly_once(frames):
    out = frames / "out"
    procs = []
    for rank in range(2):
        env = {**os.environ, "PYTHONPATH": str(REPO), "RANK": str(rank), "WORLD_SIZE": "2"}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "torchstyle.run", *_args(frames, str(frames / "frames"), str(out))],
            cwd=REPO, env=env, stderr=subprocess.PIPE, text=True))
    done = [(proc.wait(timeout=300), proc.stderr.read()) for proc in procs]
    assert all(code == 0 for code, _ in done), done
    shares = [sorted(Path(p).name for p in _written(err)) for _, err in done]
    assert shares == [["f0.png", "f1.png"], ["f2.png", "f3.png", "square.png"]]
    assert all("of 2)" in err for _, err in done)
    assert sorted(p.name for p in out.iterdir()) == ["f0.png", "f1.png", "f2.png", "f3.png", "square.png"]


def test_shards_cover_every_item_once():
    items = list(range(11))
    for world in (1, 2, 3, 4, 12):
        parts = [shard(items, rank, world) for rank in range(world)]
        assert sum(parts, []) == items
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_rank_and_world_from_torchrun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert rank_and_world() == (2, 3)
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ValueError, match="RANK=3 is not a rank of WORLD_SIZE=3"):
        rank_and_world()


def test_previous_chains_each_frame_from_the_last_result(frames, monkeypatch):
    calls = []
    original = torchstyle.StyleTransfer.__call__

    def spy(self, content, style, **options):
        result = original(self, content, style, **options)
        calls.append((options["init"], result))
        return result

    monkeypatch.setattr(torchstyle.StyleTransfer, "__call__", spy)
    assert main(_args(frames, str(frames / "frames" / "f*.png"), str(frames / "out"),
                      "--init", "previous", "--batch-size", "4", "--quiet")) == 0
    assert len(calls) == 4 and calls[0][0] == "content"
    for (_, previous), (init, _) in zip(calls, calls[1:]):
        assert torch.equal(init, previous)


def test_snapshot_names_sort():
    assert snapshot_path(Path("o/out.png"), 7, 300) == Path("o/out_007.png")
    assert snapshot_path(Path("out.jpg"), 40, 40) == Path("out_40.jpg")


def test_coarse_to_fine_on_the_command_line(frames):
    output = frames / "one.png"
    assert main(_args(frames, str(frames / "frames" / "f0.png"), str(output), "--min-size", "16",
                      "--coarse-steps", "1", "--trace", "--quiet")) == 0
    rows = json.loads((frames / "one.json").read_text())["steps"]
    assert [(row["step"], row["size"]) for row in rows] == [(1, [12, 16]), (2, [17, 23]), (3, [24, 32]),
                                                             (4, [24, 32])]


def test_sixteen_bit_output_on_the_command_line(frames):
    output = frames / "deep.png"
    assert main(_args(frames, str(frames / "frames" / "f0.png"), str(output), "--bits", "16",
                      "--quiet")) == 0
    depth = struct.unpack(">B", output.read_bytes()[24:25])[0]
    assert depth == 16


def _fails(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("torchstyle: error: "), err
    return err


def test_many_image_user_errors_are_one_line(frames, capsys):
    folder = str(frames / "frames")
    single = str(frames / "frames" / "f0.png")
    assert "--init previous chains the frames" in _fails(
        capsys, _args(frames, single, str(frames / "o.png"), "--init", "previous"))
    (frames / "empty").mkdir()
    assert "holds no image files" in _fails(capsys, _args(frames, str(frames / "empty"), str(frames / "o")))
    assert "matches no image files" in _fails(capsys, _args(frames, str(frames / "*.gif"), str(frames / "o")))
    Image.new("RGB", (8, 8)).save(frames / "frames" / "f0.jpg")
    assert "would both be written to" in _fails(capsys, _args(frames, folder, str(frames / "o")))
    (frames / "frames" / "f0.jpg").unlink()
    assert "is a file" in _fails(capsys, _args(frames, folder, single))
    assert "cannot write 16 bits per channel" in _fails(
        capsys, _args(frames, folder, str(frames / "o"), "--bits", "16", "--ext", "jpg"))
    assert "start.png does not exist" in _fails(
        capsys, _args(frames, single, str(frames / "o.png"), "--init", str(frames / "start.png")))
    (frames / "frames" / "broken.png").write_text("not a png")
    assert "broken.png is not an image file" in _fails(capsys, _args(frames, folder, str(frames / "o")))


def test_bad_rank_variables_are_one_line(frames, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "x")
    assert "must be whole numbers" in _fails(
        capsys, _args(frames, str(frames / "frames"), str(frames / "o")))


def test_version(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"torchstyle {torchstyle.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*|unknown", torchstyle.__version__)


def test_automatic_batches_fill_a_gpu_and_stay_single_elsewhere(monkeypatch):
    import torchstyle.folders as folders
    from torchstyle.transfer import evaluation_bytes

    class Fake:
        device = torch.device("cuda")
        vgg = VGGFeatures(["conv2_2"], weights=None)

    four = evaluation_bytes(Fake.vgg, 64, 64, "lbfgs", 100, batch=4)
    monkeypatch.setattr(folders, "available_memory", lambda device: four + 1)
    assert folders.auto_batch_size(Fake(), 64, 64, "lbfgs", 100) == 4
    monkeypatch.setattr(folders, "available_memory", lambda device: 10 ** 15)
    assert folders.auto_batch_size(Fake(), 64, 64, "lbfgs", 100) == folders.MAX_BATCH
    Fake.device = torch.device("cpu")
    assert folders.auto_batch_size(Fake(), 64, 64, "lbfgs", 100) == 1
