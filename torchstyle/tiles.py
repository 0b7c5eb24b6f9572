"""Tiled evaluation: the loss of an image too large for memory, one tile at a time, and exact.

Each tile is a *core* (the pixels it accounts for) grown by a *halo* of context on every side
that is inside the image. Cores partition the image on the pooling grid (multiples of
``2 ** pools``), so every activation of every recorded layer belongs to exactly one core. With
the default halo, VGG's receptive field (rounded up to the pooling grid: 80 px when cut after
conv5_1, 4 px after conv2_1), the activations inside a core equal the whole image's: zero padding
at a tile's edge only disturbs what lies within one receptive field of it, and where a tile
meets the image's edge its padding is the image's own. The objective is then the untiled one:

* style: each layer's Gram matrix of the whole image is the sum over cores of ``F Fᵀ / n``
  (``n`` the whole layer's size); a first pass without gradient adds them up, the style loss
  and its gradient ``dE/dG`` follow from the sums, and a second pass sends
  ``<dE/dG, gram(core)>`` back through each tile (the chain rule through ``G``, exactly);
* content: a sum of squares, so each core adds its share in the second pass;
* total variation: computed on the whole image (no network involved).

An evaluation thus costs one forward pass more than untiled, plus the halos' pixels. Tile
offsets are jittered every step (a random shift of the grid): with the exact halo this changes
only rounding; with a smaller ``halo`` (faster, not exact) it moves the seams so none persists.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from .losses import NeuralStyleLoss, gram_matrix, style_loss
from .vgg import LAYER_NAMES, VGGFeatures

logger = logging.getLogger(__name__)

OVERHEAD_WARNING = 2.5  # crop pixels per core pixel beyond which a tile size is worth a warning

__all__ = ["Tile", "receptive_radius", "exact_halo", "tile_grid", "largest_tile", "TiledStyleLoss"]


@dataclass(frozen=True)
class Tile:
    """A crop ``[top, bottom) x [left, right)`` of the image whose core is ``core`` (same form)."""

    top: int
    bottom: int
    left: int
    right: int
    core: tuple[int, int, int, int]

    def core_at(self, stride: int) -> tuple[slice, slice]:
        """The core's rows and columns in the crop's activations at a layer of ``stride``."""
        top, bottom, left, right = self.core
        rows = slice((top - self.top) // stride, bottom // stride - self.top // stride)
        cols = slice((left - self.left) // stride, right // stride - self.left // stride)
        return rows, cols

    def window_at(self, stride: int) -> tuple[slice, slice]:
        """The core's rows and columns in the whole image's activations at a layer of ``stride``."""
        top, bottom, left, right = self.core
        return slice(top // stride, bottom // stride), slice(left // stride, right // stride)


def _stride(name: str) -> int:
    """Input pixels per activation at layer ``name``: 2 per pooling before it."""
    return 2 ** sum(n.startswith("pool") for n in LAYER_NAMES[:LAYER_NAMES.index(name)])


def receptive_radius(extractor: VGGFeatures) -> int:
    """Input pixels on each side that the deepest recorded activation depends on (pooling-aligned).

    Each 3x3 convolution adds one activation of its layer, that is its stride in pixels; 2x2
    poolings on an aligned grid add nothing.
    """
    radius, stride = 0, 1
    for module in extractor.features:
        if isinstance(module, nn.Conv2d):
            radius += stride * (module.kernel_size[0] // 2)
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            stride *= 2
    return radius


def exact_halo(extractor: VGGFeatures) -> int:
    """The receptive radius rounded up to the pooling grid: the least halo for exact tiles."""
    grid = extractor.min_side
    return math.ceil(receptive_radius(extractor) / grid) * grid


def _spans(length: int, core: int, offset: int) -> list[tuple[int, int]]:
    """Cores partitioning ``[0, length)`` with boundaries at ``offset + k * core``."""
    cuts = [0, *range(offset or core, length, core), length]
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def tile_grid(height: int, width: int, core: int, halo: int,
              offset: tuple[int, int] = (0, 0)) -> list[Tile]:
    """Tiles whose cores (``core`` px, the grid shifted by ``offset``) cover the image once."""
    tiles = []
    for top, bottom in _spans(height, core, offset[0]):
        for left, right in _spans(width, core, offset[1]):
            tiles.append(Tile(max(0, top - halo), min(height, bottom + halo),
                              max(0, left - halo), min(width, right + halo),
                              (top, bottom, left, right)))
    return tiles


def largest_tile(extractor: VGGFeatures, height: int, width: int, fits: Callable[[int], bool],
                 halo: Optional[int] = None) -> Optional[int]:
    """The largest tile side (on the pooling grid, above twice the halo) for which ``fits(tile)``
    is true, or ``None`` when even the smallest does not fit."""
    grid = extractor.min_side
    halo = exact_halo(extractor) if halo is None else halo
    smallest, tile, candidates = 2 * halo + grid, max(height, width) // grid * grid, []
    while tile > smallest:  # each about 1.25x smaller than the one before
        candidates.append(tile)
        tile = int(tile / 1.25) // grid * grid
    return next((t for t in [*candidates, smallest] if fits(t)), None)


class TiledStyleLoss(NeuralStyleLoss):
    """:class:`~torchstyle.losses.NeuralStyleLoss` evaluated tile by tile: the same terms and
    the same gradient, with one ``tile x tile`` crop's activations in memory at a time.

    ``tile`` is a crop's side including its halo (``None`` for ``halo``: the exact one);
    ``seed`` seeds the per-step jitter of the grid. A tiled evaluation cannot be captured into
    a CUDA graph (``capturable = False``). ``normalize_gradients`` needs a whole layer's gradient
    at once and is refused.
    """

    capturable = False

    def __init__(self, extractor: VGGFeatures, content: torch.Tensor,
                 styles: Sequence[torch.Tensor], *, tile: int, halo: Optional[int] = None,
                 seed: Optional[int] = None, **options) -> None:
        grid = extractor.min_side
        self.halo = exact_halo(extractor) if halo is None else halo
        if self.halo < 0 or self.halo % grid:
            raise ValueError(f"the tile halo must be a multiple of {grid} px (the pooling grid), "
                             f"got {self.halo}")
        self.core = (tile - 2 * self.halo) // grid * grid
        if self.core < grid:
            raise ValueError(f"a {tile} px tile leaves no core inside its {self.halo} px halo; "
                             f"use a tile of at least {2 * self.halo + grid} px")
        overhead = (tile / self.core) ** 2
        if overhead > OVERHEAD_WARNING:
            logger.warning("%d px tiles around %d px cores evaluate about %.1fx the image's pixels "
                           "(the %d px halo); larger tiles are faster", tile, self.core, overhead,
                           self.halo)
        if options.get("normalize_gradients"):
            raise ValueError("normalize_gradients needs each layer's whole gradient at once and "
                             "cannot be combined with tiles")
        self.grid = grid
        self.generator = torch.Generator().manual_seed(0 if seed is None else seed)
        super().__init__(extractor, content, styles, **options)

    def tiles(self, height: int, width: int, jitter: bool = False) -> list[Tile]:
        """This evaluation's tiles; with ``jitter`` the grid is shifted at random (on the grid)."""
        offset = (0, 0)
        if jitter:
            steps = self.core // self.grid
            offset = tuple(int(v) * self.grid for v in
                           torch.randint(steps, (2,), generator=self.generator))
        return tile_grid(height, width, self.core, self.halo, offset)

    def _cores(self, image: torch.Tensor, layers: Sequence[str],
               tiles: Sequence[Tile]) -> Iterator[dict[str, torch.Tensor]]:
        """For each tile, the activations of ``layers`` inside its core (empty cores left out)."""
        for tile in tiles:
            features = self.extractor(image[..., tile.top:tile.bottom, tile.left:tile.right])
            cores = {}
            for name in layers:
                rows, cols = tile.core_at(_stride(name))
                core = features[name][..., rows, cols]
                if core.shape[-1] > 0 and core.shape[-2] > 0:
                    cores[name] = core
            yield cores

    @staticmethod
    def _layer_size(image: torch.Tensor, name: str, channels: int) -> int:
        """Entries per image of layer ``name``'s output over the whole image."""
        stride = _stride(name)
        return channels * (image.shape[-2] // stride) * (image.shape[-1] // stride)

    def features(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The whole image's activations of ``layers``, stitched from the tiles' cores."""
        stitched: dict[str, torch.Tensor] = {}
        tiles = self.tiles(*image.shape[-2:])
        for tile, cores in zip(tiles, self._cores(image, layers, tiles)):
            for name, core in cores.items():
                stride = _stride(name)
                if name not in stitched:
                    stitched[name] = core.new_zeros(*core.shape[:2], image.shape[-2] // stride,
                                                    image.shape[-1] // stride)
                stitched[name][(..., *tile.window_at(stride))] = core.detach()
        return stitched

    def grams(self, image: torch.Tensor, layers: Sequence[str],
              tiles: Optional[Sequence[Tile]] = None) -> dict[str, torch.Tensor]:
        """The whole image's Gram matrices of ``layers``, summed over the tiles' cores."""
        sums: dict[str, torch.Tensor] = {}
        tiles = self.tiles(*image.shape[-2:]) if tiles is None else tiles
        for cores in self._cores(image, layers, tiles):
            for name, core in cores.items():
                gram = gram_matrix(core, self._layer_size(image, name, core.shape[1]))
                sums[name] = gram if name not in sums else sums[name] + gram
        return sums

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The terms of :class:`NeuralStyleLoss`; ``total`` carries the exact gradient."""
        tiles = self.tiles(*image.shape[-2:], jitter=True)
        with torch.no_grad():
            grams = self.grams(image, list(self.layer_weights), tiles)
        with torch.enable_grad():
            leaves = {name: gram.requires_grad_() for name, gram in grams.items()}
            style = self.style_weight * style_loss(leaves, self.style_targets, self.layer_weights)
            slopes = dict(zip(leaves, torch.autograd.grad(style.sum(), list(leaves.values()))))
            pixels = image.detach().requires_grad_()
            content = image.new_zeros(image.shape[0])
            share = self.content_weight / len(self.content_layers)
            for tile, cores in zip(tiles, self._cores(pixels, [*self.layer_weights, *self.content_layers],
                                                      tiles)):
                surrogate = sum((slopes[name] * gram_matrix(
                    cores[name], self._layer_size(image, name, cores[name].shape[1]))).sum()
                    for name in self.layer_weights if name in cores)
                part = image.new_zeros(image.shape[0])  # this core's share of the content term
                for name in self.content_layers:
                    if name in cores:
                        target = self.content_targets[name]
                        squares = (cores[name].float() - target[(..., *tile.window_at(_stride(name)))]) ** 2
                        part = part + share * squares.flatten(1).sum(1) / target[0].numel()
                (surrogate + part.sum()).backward()
                content += part.detach()
        terms = {"content": content, "style": style.detach(), "tv": self.tv(image)}
        terms["total"] = _WithGradient.apply(image, content + terms["style"], pixels.grad) + terms["tv"]
        return terms


class _WithGradient(torch.autograd.Function):
    """``value`` (per image) in forward; backward hands ``image`` the gradient already computed."""

    @staticmethod
    def forward(ctx, image: torch.Tensor, value: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grad)
        return value.clone()

    @staticmethod
    def backward(ctx, upstream: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return upstream.view(-1, 1, 1, 1).to(grad.dtype) * grad, None, None
