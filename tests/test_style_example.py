"""examples/stylize.py runs end to end (random VGG weights from a saved file, tiny sizes)."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import torch
from PIL import Image

from torchstyle.vgg import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, VGGFeatures

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "stylize.py"


def test_example_writes_three_blends(tmp_path, monkeypatch):
    torch.manual_seed(0)
    weights = tmp_path / "vgg.pth"
    network = VGGFeatures(DEFAULT_STYLE_LAYERS + DEFAULT_CONTENT_LAYERS, weights=None)
    torch.save(network.state_dict(), weights)
    monkeypatch.setattr(sys, "argv", ["stylize.py", "--weights", str(weights), "--size", "32",
                                      "--steps", "2", "--out", str(tmp_path)])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    for name in ("out_blend_100.png", "out_blend_050.png", "out_blend_000.png"):
        with Image.open(tmp_path / name) as picture:
            assert picture.size == (32, 24)
