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

Every term is computed per image: a batch of ``B`` images gives terms of shape ``(B,)``, each
image's own objective, so that ``total.sum()`` has each image's own gradient.
``layer_weights="equal"`` is the paper's choice (w_l = 1/L) and the default;
``"deeper"`` is the lecture's "give more weight to deeper layers" (w_l ∝ 1, 2, ..., L from the
shallowest to the deepest, summing to 1); a sequence or mapping of numbers is used as given.
Gram matrices are computed in float32 even under autocast. The defaults of
:class:`torchstyle.StyleTransfer` (content 1, style 1e6, tv 0) follow the scale of the PyTorch
neural-style tutorial, which uses these same normalizations on torchvision's VGG-19.
``normalize_gradients`` is Johnson's neural-style option: the gradient each loss term sends into
its layer is divided by its L1 norm (per image) and multiplied by the term's weight.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import Optional, Union

import torch

from .vgg import layer_index

__all__ = [
    "gram_matrix", "content_loss", "style_layer_loss", "style_loss", "tv_loss",
    "resolve_layer_weights", "normalized_gradient", "NeuralStyleLoss",
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
    def forward(ctx, features: torch.Tensor, n: int) -> torch.Tensor:
        batch, channels, height, width = features.shape
        ctx.save_for_backward(features)
        ctx.n = n
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
            return (rows @ both).reshape(batch, height, width, channels).permute(0, 3, 1, 2), None
        columns = features.reshape(batch, channels, height * width)
        return (both @ columns).reshape(features.shape), None


def gram_matrix(features: torch.Tensor, n: Optional[int] = None) -> torch.Tensor:
    """``F Fᵀ / n`` for features ``(B, C, H, W)``: a ``(B, C, C)`` float32 tensor.

    ``n`` defaults to ``C·H·W``; a tile of a larger layer passes the whole layer's size, so that
    the tiles' Gram matrices add up to the whole layer's (:mod:`torchstyle.tiles`).
    """
    device = features.device.type
    n = n or features[0].numel()
    with torch.autocast(device, enabled=False) if device in ("cuda", "cpu") else nullcontext():
        return _Gram.apply(features.float(), n)


def _per_image_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean over every dimension but the first (the batch): shape ``(B,)``."""
    return values.flatten(1).mean(1)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the image's and the content image's features, per image."""
    return _per_image_mean((features.float() - target.float()) ** 2)


def style_layer_loss(gram: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``E_l``: mean squared difference of two Gram matrices, per image."""
    return _per_image_mean((gram - target) ** 2)


def style_loss(grams: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
               weights: Mapping[str, float]) -> torch.Tensor:
    """``Σ_l w_l · E_l`` over the layers named in ``weights``, per image."""
    return sum(w * style_layer_loss(grams[name], targets[name]) for name, w in weights.items())


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of vertically and horizontally adjacent pixels,
    per image."""
    image = image.float()
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., 1:] - image[..., :-1]
    return _per_image_mean(dy.pow(2)) + _per_image_mean(dx.pow(2))


class _NormalizeGradient(torch.autograd.Function):
    """Identity forward; backward divides each image's gradient by its L1 norm, times ``strength``."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, strength: float) -> torch.Tensor:
        ctx.strength = strength
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        norm = grad.abs().flatten(1).sum(1).view(-1, *([1] * (grad.dim() - 1)))
        return grad / (norm + 1e-8) * ctx.strength, None


def normalized_gradient(features: torch.Tensor, strength: float) -> torch.Tensor:
    """``features`` unchanged; the gradient coming back through it gets L1 norm ``strength`` per
    image (Johnson's neural-style ``-normalize_gradients``). Use it on a loss's own branch only."""
    return _NormalizeGradient.apply(features, strength)


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
    """The total loss for content images and a blend of style images; targets fixed at creation.

    ``content`` is one image ``(1, 3, H, W)`` or a batch ``(B, 3, H, W)``, each its own objective;
    each style image is ``(1, 3, h, w)`` (shared by the batch) or ``(B, 3, h, w)`` (one per image).
    The content features and the blended style Gram matrices ``A_l = Σ_s b_s · gram(F_s)`` are
    computed once, without gradient (:meth:`features` and :meth:`grams`, which
    :class:`torchstyle.tiles.TiledStyleLoss` computes tile by tile). Calling it on images returns
    the weighted terms ``{"content", "style", "tv", "total"}``, each of shape ``(B,)`` (``total``
    is their sum): ``total.sum().backward()`` gives each image its own gradient.
    """

    def __init__(self, extractor: Extractor, content: torch.Tensor, styles: Sequence[torch.Tensor],
                 *, content_layers: Sequence[str], style_layers: Sequence[str],
                 layer_weights: LayerWeights = "equal",
                 style_blend_weights: Optional[Sequence[float]] = None,
                 content_weight: float = 1.0, style_weight: float = 1e6, tv_weight: float = 0.0,
                 normalize_gradients: bool = False) -> None:
        if not styles:
            raise ValueError("at least one style image is needed")
        self.extractor = extractor
        self.content_layers = tuple(content_layers)
        self.layer_weights = resolve_layer_weights(style_layers, layer_weights)
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight
        self.normalize_gradients = normalize_gradients
        blend = _blend(style_blend_weights, len(styles))
        with torch.no_grad():
            self.content_targets = self.features(content, self.content_layers)
            self.style_targets: dict[str, torch.Tensor] = {}
            for b, style in zip(blend, styles):
                for name, gram in self.grams(style, self.layer_weights).items():
                    previous = self.style_targets.get(name)
                    self.style_targets[name] = b * gram if previous is None else previous + b * gram

    def features(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The outputs of ``layers`` for ``image``, detached."""
        features = self.extractor(image)
        return {name: features[name].detach() for name in layers}

    def grams(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The Gram matrices of ``layers`` for ``image``."""
        features = self.extractor(image)
        return {name: gram_matrix(features[name]) for name in layers}

    def _branch(self, features: torch.Tensor, strength: float) -> torch.Tensor:
        """``features`` as one loss term sees them: with its gradient normalized when asked."""
        return normalized_gradient(features, strength) if self.normalize_gradients else features

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted content, style and total-variation losses of each image, and their sum."""
        features = self.extractor(image)
        per_layer = self.content_weight / len(self.content_layers)
        content = sum(content_loss(self._branch(features[n], per_layer), self.content_targets[n])
                      for n in self.content_layers) / len(self.content_layers)
        grams = {name: gram_matrix(self._branch(features[name], self.style_weight * w))
                 for name, w in self.layer_weights.items()}
        terms = {
            "content": self.content_weight * content,
            "style": self.style_weight * style_loss(grams, self.style_targets, self.layer_weights),
            "tv": self.tv(image),
        }
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms

    def tv(self, image: torch.Tensor) -> torch.Tensor:
        """The weighted total-variation term per image (zeros when its weight is 0)."""
        return self.tv_weight * tv_loss(image) if self.tv_weight else image.new_zeros(image.shape[0])
