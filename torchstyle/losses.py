"""The losses of Gatys et al.: Gram matrix, content, style (weighted by layer), total variation.

Formulas (``F`` the features of the image being optimized at one layer, shape ``C x H x W``
flattened to ``C x HW``; ``P`` the content image's, ``A`` the style image's Gram matrix)::

    gram(F)        = F Fᵀ / (C·H·W)                       normalized by the layer's size
    content(F, P)  = mean((F - P)²)                       over the C·H·W entries, then
                                                          averaged over the content layers
    E_l(F, A)      = mean((gram(F) - A)²)                 over the C² entries of layer l
    style          = Σ_l w_l · E_l                        w_l: ``layer_weights``
    tv(x)          = mean((x[..., 1:, :] - x[..., :-1, :])²) + mean((x[..., 1:] - x[..., :-1])²)
    total          = content_weight·content + style_weight·style + tv_weight·tv

``layer_weights="equal"`` is the paper's choice (w_l = 1/L) and the default;
``"deeper"`` is the lecture's "give more weight to deeper layers" (w_l ∝ 1, 2, ..., L from the
shallowest to the deepest, summing to 1); a sequence or mapping of numbers is used as given.
Gram matrices are computed in float32 even under autocast. The defaults of
:class:`torchstyle.StyleTransfer` (content 1, style 1e6, tv 0) follow the scale of the PyTorch
neural-style tutorial, which uses these same normalizations on torchvision's VGG-19.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import Optional, Union

import torch
import torch.nn.functional as F

from .vgg import layer_index

__all__ = [
    "gram_matrix", "content_loss", "style_layer_loss", "style_loss", "tv_loss",
    "resolve_layer_weights", "NeuralStyleLoss",
]

LayerWeights = Union[str, Sequence[float], Mapping[str, float]]
Extractor = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


class _Gram(torch.autograd.Function):
    """``G = F Fᵀ / n`` with a one-matmul backward ``dF = (dG + dGᵀ) F / n``.

    Autograd's own backward of ``F @ Fᵀ`` runs two matmuls and an addition; this runs one, and
    in the memory layout of the features (NHWC rows for channels-last, NCHW otherwise), which
    makes the Gram part of an evaluation about 3x faster on CPU (benchmarks/style.py).
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = features.shape
        ctx.save_for_backward(features)
        ctx.n = channels * height * width
        if features.is_contiguous(memory_format=torch.channels_last) and channels > 1:
            rows = features.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
            return rows.mT @ rows / ctx.n
        columns = features.reshape(batch, channels, height * width)
        return columns @ columns.mT / ctx.n

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (features,) = ctx.saved_tensors
        batch, channels, height, width = features.shape
        both = (grad + grad.mT) / ctx.n
        if features.is_contiguous(memory_format=torch.channels_last) and channels > 1:
            rows = features.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
            return (rows @ both).reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        columns = features.reshape(batch, channels, height * width)
        return (both @ columns).reshape(features.shape)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``F Fᵀ / (C·H·W)`` for features ``(B, C, H, W)``: a ``(B, C, C)`` float32 tensor."""
    device = features.device.type
    with torch.autocast(device, enabled=False) if device in ("cuda", "cpu") else nullcontext():
        return _Gram.apply(features.float())


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the image's and the content image's features."""
    return F.mse_loss(features.float(), target.float())


def style_layer_loss(gram: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``E_l``: mean squared difference of two Gram matrices."""
    return F.mse_loss(gram, target)


def style_loss(grams: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
               weights: Mapping[str, float]) -> torch.Tensor:
    """``Σ_l w_l · E_l`` over the layers named in ``weights``."""
    return sum(w * style_layer_loss(grams[name], targets[name]) for name, w in weights.items())


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of vertically and horizontally adjacent pixels."""
    image = image.float()
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., 1:] - image[..., :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


def resolve_layer_weights(style_layers: Sequence[str], layer_weights: LayerWeights = "equal",
                          ) -> dict[str, float]:
    """Per-layer style weights ``{name: w_l}`` from a preset name, a sequence or a mapping."""
    layers = list(style_layers)
    if isinstance(layer_weights, str):
        if layer_weights == "equal":
            return {name: 1.0 / len(layers) for name in layers}
        if layer_weights == "deeper":
            by_depth = sorted(layers, key=layer_index)
            total = len(layers) * (len(layers) + 1) / 2
            return {name: (by_depth.index(name) + 1) / total for name in layers}
        raise ValueError(
            f"layer_weights must be 'equal', 'deeper' or numbers, got {layer_weights!r}")
    if isinstance(layer_weights, Mapping):
        unknown = set(layer_weights) - set(layers)
        missing = set(layers) - set(layer_weights)
        if unknown or missing:
            raise ValueError(f"layer_weights must name exactly the style layers {layers}; "
                             f"got {sorted(layer_weights)}")
        return {name: float(layer_weights[name]) for name in layers}
    values = [float(w) for w in layer_weights]
    if len(values) != len(layers):
        raise ValueError(
            f"{len(values)} layer weights given for {len(layers)} style layers {layers}")
    return dict(zip(layers, values))


def _blend(style_weights: Optional[Sequence[float]], count: int) -> list[float]:
    """Blend weights for ``count`` style images, normalized to sum to 1 (equal by default)."""
    values = [1.0] * count if style_weights is None else [float(w) for w in style_weights]
    if len(values) != count:
        raise ValueError(f"{len(values)} style blend weights given for {count} style images")
    if any(w < 0 for w in values) or sum(values) <= 0:
        raise ValueError(f"style blend weights must be >= 0 with a positive sum, got {values}")
    return [w / sum(values) for w in values]


class NeuralStyleLoss:
    """The total loss for one content image and a blend of style images; targets fixed at creation.

    The content features and the blended style Gram matrices ``A_l = Σ_s b_s · gram(F_s)`` are
    computed once, without gradient. Calling it on an image returns the weighted terms
    ``{"content", "style", "tv", "total"}`` (``total`` is their sum), ready for ``backward()``.
    """

    def __init__(self, extractor: Extractor, content: torch.Tensor, styles: Sequence[torch.Tensor],
                 *, content_layers: Sequence[str], style_layers: Sequence[str],
                 layer_weights: LayerWeights = "equal",
                 style_blend_weights: Optional[Sequence[float]] = None,
                 content_weight: float = 1.0, style_weight: float = 1e6, tv_weight: float = 0.0,
                 ) -> None:
        if not styles:
            raise ValueError("at least one style image is needed")
        self.extractor = extractor
        self.content_layers = tuple(content_layers)
        self.layer_weights = resolve_layer_weights(style_layers, layer_weights)
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight
        blend = _blend(style_blend_weights, len(styles))
        with torch.no_grad():
            features = extractor(content)
            self.content_targets = {n: features[n].detach() for n in self.content_layers}
            self.style_targets: dict[str, torch.Tensor] = {}
            for b, style in zip(blend, styles):
                features = extractor(style)
                for name in self.layer_weights:
                    gram = b * gram_matrix(features[name])
                    previous = self.style_targets.get(name)
                    self.style_targets[name] = gram if previous is None else previous + gram

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted content, style and total-variation losses of ``image`` and their sum."""
        features = self.extractor(image)
        content = sum(content_loss(features[n], self.content_targets[n])
                      for n in self.content_layers) / len(self.content_layers)
        grams = {name: gram_matrix(features[name]) for name in self.layer_weights}
        terms = {
            "content": self.content_weight * content,
            "style": self.style_weight * style_loss(grams, self.style_targets, self.layer_weights),
            "tv": self.tv_weight * tv_loss(image) if self.tv_weight else image.new_zeros(()),
        }
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms
