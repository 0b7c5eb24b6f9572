"""torch hub entry points for ``torchstyle``: ``torch.hub.load(<repo or dir>, <entry>, ...)``.

    extractor = torch.hub.load("owner/repo", "vgg19_features", layers=["relu3_1"])
    transfer = torch.hub.load("owner/repo", "style_transfer")
    picture = transfer(photo, painting, size=512)          # PIL images or [0, 1] tensors

``weights`` defaults to torchvision's ``VGG19_Weights.IMAGENET1K_V1`` (downloaded once into the
torch hub cache); pass a state_dict path, or ``None`` for random weights.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torchstyle import StyleTransfer
from torchstyle.vgg import (DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, DEFAULT_WEIGHTS,
                            VGGFeatures, Weights)

dependencies = ["torch", "torchvision"]


def vgg19_features(layers: Sequence[str] = DEFAULT_STYLE_LAYERS + DEFAULT_CONTENT_LAYERS,
                   weights: Weights = DEFAULT_WEIGHTS, pooling: str = "max",
                   **kwargs: Any) -> VGGFeatures:
    """A frozen VGG-19 feature extractor: ``extractor(images)`` returns ``{layer name: output}``.

    Images are ``(B, 3, H, W)`` in ``[0, 1]``; layers are names such as ``conv1_1`` or ``relu4_2``.
    """
    return VGGFeatures(layers, weights=weights, pooling=pooling, **kwargs)


def style_transfer(weights: Weights = DEFAULT_WEIGHTS, **kwargs: Any) -> StyleTransfer:
    """A ready :class:`torchstyle.StyleTransfer`: call it with a content and a style image."""
    return StyleTransfer(weights=weights, **kwargs)
