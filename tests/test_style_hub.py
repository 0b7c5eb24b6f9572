"""hubconf.py: the entry points load through torch.hub from this checkout, without network."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

import torchstyle

REPO = str(Path(__file__).resolve().parents[1])


def test_hub_feature_extractor_records_the_asked_layers():
    torch.manual_seed(0)
    extractor = torch.hub.load(REPO, "vgg19_features", source="local",
                               layers=["relu1_1", "conv2_1"], weights=None)
    features = extractor(torch.rand(2, 3, 32, 32))
    assert features["relu1_1"].shape == (2, 64, 32, 32)
    assert features["conv2_1"].shape == (2, 128, 16, 16)


def test_hub_style_transfer_takes_pil_images_and_tensors():
    torch.manual_seed(0)
    transfer = torch.hub.load(REPO, "style_transfer", source="local", weights=None, device="cpu",
                              style_layers=["conv1_1", "conv2_1"], content_layers=["conv2_2"])
    assert isinstance(transfer, torchstyle.StyleTransfer)
    photo = Image.new("RGB", (40, 30), (200, 120, 40))
    painting = torch.rand(3, 24, 24)
    picture = transfer(photo, painting, size=32, num_steps=2)
    assert isinstance(picture, Image.Image) and picture.size == (32, 24)
    result = transfer(torch.rand(1, 3, 16, 16), painting, size=None, num_steps=1)
    assert result.shape == (1, 3, 16, 16)
