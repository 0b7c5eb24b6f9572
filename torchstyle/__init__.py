"""Fast neural style transfer (Gatys et al.) on a frozen torchvision VGG-19: the public API.

    from torchstyle import stylize
    picture = stylize("photo.jpg", "starry_night.jpg", size=512)   # a PIL image
    picture.save("out.png")

:class:`StyleTransfer` loads the network once and stylizes any number of images (paths, PIL
images or ``[0, 1]`` tensors, batches of same-size tensors), coarse to fine and tile by tile
when an image does not fit; :func:`stylize` is the one-shot form. The pieces live in ``vgg``
(features and hooks), ``losses``, ``images`` (files and colors), ``transfer`` (the optimization
loop), ``scales`` (the coarse-to-fine schedule), ``tiles`` (tiled evaluation) and ``folders``
(many files, ranks); ``python -m torchstyle.run`` is the command line.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from PIL import Image
from tqdm.auto import tqdm

from .images import (ImageError, fit_size, image_to_tensor, load_image, luminance,
                     match_histogram, match_luminance, resize, save_image, tensor_to_image,
                     with_chroma_of)
from .losses import (LayerWeights, NeuralStyleLoss, content_loss, gram_matrix, style_loss,
                     tv_loss)
from .scales import DEFAULT_MIN_SIZE, scale_sizes, scale_steps, upsample
from .tiles import TiledStyleLoss, largest_tile
from .transfer import (INITS, LBFGS_HISTORY, Callback, MemoryLimitError, autocast,
                       available_memory, check_memory, evaluation_bytes, initial_image, optimize,
                       precision_flags, resolve_precision, select_device)
from .vgg import (DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, DEFAULT_WEIGHTS, LAYER_NAMES,
                  VGGFeatures, Weights, WeightsError)

__all__ = [
    "StyleTransfer", "stylize", "VGGFeatures", "LAYER_NAMES", "DEFAULT_STYLE_LAYERS",
    "DEFAULT_CONTENT_LAYERS", "DEFAULT_WEIGHTS", "NeuralStyleLoss", "gram_matrix",
    "content_loss", "style_loss", "tv_loss", "optimize", "load_image", "save_image",
    "ImageError", "WeightsError", "MemoryLimitError", "TiledStyleLoss", "scale_sizes",
    "DEFAULT_MIN_SIZE", "match_histogram", "__version__",
]

logger = logging.getLogger(__name__)
try:
    __version__ = importlib.metadata.version("torch-loaders-style")
except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "unknown"

ImageInput = Union[str, os.PathLike, Image.Image, torch.Tensor]
COLOR_TRANSFERS = (None, "histogram")
NETWORK_OPTIONS = ("style_layers", "content_layers", "pooling", "weights", "device", "precision",
                   "cuda_graphs")


def _is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError."""
    return isinstance(exc, torch.OutOfMemoryError) or "can't allocate memory" in str(exc)


class StyleTransfer:
    """A frozen VGG-19 on a device, ready to stylize images with Gatys et al.'s method.

    Network options are fixed here (layers, pooling, weights, device, precision, CUDA graphs);
    everything about one picture is an argument of the call. ``precision="auto"`` uses TF32 on
    CUDA and float32 elsewhere; ``"bf16"`` adds bf16 autocast (Gram matrices stay float32).
    ``cuda_graphs=None`` replays each step (evaluation and update) from a CUDA graph on CUDA.
    """

    def __init__(self, *, style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
                 content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS, pooling: str = "max",
                 weights: Weights = DEFAULT_WEIGHTS, device: Union[str, torch.device, None] = None,
                 precision: str = "auto", cuda_graphs: Optional[bool] = None) -> None:
        self.style_layers, self.content_layers = tuple(style_layers), tuple(content_layers)
        if not self.style_layers or not self.content_layers:
            raise ValueError("at least one style layer and one content layer are needed")
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.cuda_graphs = cuda_graphs
        self.vgg = VGGFeatures(self.style_layers + self.content_layers, weights=weights,
                               pooling=pooling, channels_last=self.device.type != "mps")
        self.vgg.to(self.device)

    def _tensor(self, image: ImageInput) -> torch.Tensor:
        """Any accepted input as a ``(B, 3, H, W)`` float tensor in ``[0, 1]`` on the CPU, unresized."""
        if not isinstance(image, torch.Tensor):
            return image_to_tensor(image if isinstance(image, Image.Image) else load_image(image))
        tensor = image.detach().float().cpu()
        tensor = tensor.unsqueeze(0) if tensor.dim() == 3 else tensor
        if tensor.dim() != 4 or tensor.shape[1] != 3:
            raise ValueError(f"expected an image tensor (3, H, W) or (B, 3, H, W), "
                             f"got shape {tuple(image.shape)}")
        return tensor.clamp(0, 1)

    def _plan_tile(self, height: int, width: int, batch: int, tile: Optional[int],
                   halo: Optional[int], optimizer: str, history_size: int) -> Optional[int]:
        """The tile side for a ``height x width`` scale, or ``None`` for one whole evaluation.

        ``tile=None``: tiles only when the whole image will not fit in free memory (then the
        largest that fits); ``0``: never; a side: that side. Too little memory for any
        raises :class:`MemoryLimitError` with advice.
        """
        def needed(side: Optional[int]) -> float:
            return evaluation_bytes(self.vgg, height, width, optimizer, history_size, batch, side)

        if tile is not None and tile < 0:
            raise ValueError(f"tile must be a positive number of pixels or 0 (never), got {tile}")
        if tile and tile < max(height, width):
            check_memory(needed(tile), height, width, self.device, "use a smaller --tile or --size")
            return tile
        available = available_memory(self.device)
        if tile is None and available is not None and needed(None) > available:
            tile = largest_tile(self.vgg, height, width, lambda side: needed(side) <= available,
                                halo)
            if tile is not None and tile < max(height, width):
                logger.info("a %dx%d px image does not fit in memory whole; evaluating it in "
                            "%d px tiles", width, height, tile)
                return tile
        check_memory(needed(None), height, width, self.device)
        return None

    def __call__(self, content: ImageInput, style: Union[ImageInput, Sequence[ImageInput]], *,
                 size: Optional[int] = 512, num_steps: int = 300,
                 min_size: Optional[int] = DEFAULT_MIN_SIZE, coarse_steps: Optional[int] = None,
                 content_weight: float = 1.0, style_weight: float = 1e6, tv_weight: float = 0.0,
                 layer_weights: LayerWeights = "equal",
                 style_blend_weights: Optional[Sequence[float]] = None, style_scale: float = 1.0,
                 init: Union[str, ImageInput] = "content", noise_ratio: float = 0.6,
                 optimizer: str = "lbfgs", learning_rate: Optional[float] = None,
                 history_size: int = LBFGS_HISTORY, original_colors: bool = False,
                 color_transfer: Optional[str] = None, normalize_gradients: bool = False,
                 avg_decay: float = 0.0, tile: Optional[int] = None, tile_halo: Optional[int] = None,
                 seed: Optional[int] = None, callback: Optional[Callback] = None,
                 progress: bool = False) -> Union[Image.Image, torch.Tensor]:
        """Stylize ``content`` with one style image or a list (blended by ``style_blend_weights``).

        ``size`` is the long edge in pixels (``None`` keeps the content's); style images get
        ``style_scale`` times that. Coarse to fine: from ``min_size`` up to ``size`` in steps of
        about √2 (:mod:`torchstyle.scales`), ``coarse_steps`` (default ``num_steps``) steps at
        each coarse scale and ``num_steps`` at the last; ``min_size=None`` or ``>= size`` is one
        scale. ``tile`` (px, ``None``: only when the image will not fit, ``0``: never) evaluates
        the same objective tile by tile (:mod:`torchstyle.tiles`). ``init`` is ``"content"``,
        ``"style"``, ``"noise"``, ``"mix"`` or an image (path, PIL or tensor) to start from.
        ``original_colors`` transfers luminance only and keeps the content's colors (Gatys et al.
        2016); ``color_transfer="histogram"`` gives the result the content's color histogram.
        ``normalize_gradients`` divides each loss term's gradient by its L1 norm (neural-style);
        ``avg_decay`` > 0 returns the running average of the iterates (crowsonkb).
        ``callback(step, losses, image)`` runs after every step (numbered across scales) with the
        image as it will be returned. A tensor input gives a tensor back (same device and rank;
        a batch ``(B, 3, H, W)`` is optimized together, each image its own objective and
        optimizer state), anything else a PIL image.
        """
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise ValueError("at least one style image is needed")
        if style_scale <= 0:
            raise ValueError(f"style_scale must be positive, got {style_scale}")
        if color_transfer not in COLOR_TRANSFERS:
            raise ValueError(f"color_transfer must be one of {', '.join(map(str, COLOR_TRANSFERS))}, "
                             f"got {color_transfer!r}")
        if color_transfer and original_colors:
            raise ValueError("original_colors and color_transfer both set the colors; choose one")
        source = self._tensor(content)
        batch = source.shape[0]
        final = size or max(source.shape[-2:])
        sizes = scale_sizes(final, min_size)
        if len(sizes) > 1 and sizes[0] < self.vgg.min_side:
            raise ValueError(f"min_size must be at least {self.vgg.min_side} px (what the deepest "
                             f"layer needs), got {min_size}")
        steps = scale_steps(len(sizes), num_steps, coarse_steps)
        plans = [self._plan_tile(*fit_size(*source.shape[-2:], long_side, self.vgg.min_side),
                                 batch, tile, tile_halo, optimizer, history_size)
                 for long_side in sizes]  # every scale is checked before any work
        style_sources = [self._tensor(s) for s in styles]
        for style_source in style_sources if plans[-1] is None else ():  # tiles tile styles too
            shape = fit_size(*style_source.shape[-2:], max(1, round(style_scale * final)),
                             self.vgg.min_side)
            check_memory(self.vgg.activation_bytes(*shape), *shape, self.device,  # forward only
                         "use a smaller --style-scale or --size")
        start = init if isinstance(init, str) and init in INITS else self._tensor(init)
        loss_options = dict(content_layers=self.content_layers, style_layers=self.style_layers,
                            layer_weights=layer_weights, style_blend_weights=style_blend_weights,
                            content_weight=content_weight, style_weight=style_weight,
                            tv_weight=tv_weight, normalize_gradients=normalize_gradients)
        result, done = None, 0
        with tqdm(total=sum(steps), disable=not progress, unit="step", desc="stylize") as bar:
            for long_side, scale_steps_here, scale_tile in zip(sizes, steps, plans):
                target = resize(source, long_side, self.vgg.min_side).to(self.device)
                height, width = target.shape[-2:]
                style_images = [resize(s, max(1, round(style_scale * max(height, width))),
                                       self.vgg.min_side).to(self.device) for s in style_sources]
                if original_colors:  # Gatys et al. 2016: luminance only, styles matched to it
                    style_images = [match_luminance(s, target) for s in style_images]
                start_from = luminance(target) if original_colors else target

                def finish(image: torch.Tensor, target: torch.Tensor = target) -> torch.Tensor:
                    if original_colors:
                        return with_chroma_of(image, target)
                    return match_histogram(image, target) if color_transfer else image

                def on_step(step: int, losses: dict, image: torch.Tensor, done: int = done) -> None:
                    bar.set_postfix({k: f"{sum(v) if isinstance(v, list) else v:.3g}"
                                     for k, v in losses.items()}, refresh=False)
                    bar.update()
                    if callback is not None:
                        callback(done + step, losses, finish(image))

                bar.set_description(f"stylize {width}x{height}")
                try:
                    with precision_flags(self.precision), autocast(self.precision, self.device):
                        loss_fn = (NeuralStyleLoss(self.vgg, start_from, style_images, **loss_options)
                                   if scale_tile is None else
                                   TiledStyleLoss(self.vgg, start_from, style_images, tile=scale_tile,
                                                  halo=tile_halo, seed=seed, **loss_options))
                    if result is not None:  # coarse to fine: from the last scale's result
                        first = upsample(result, height, width)
                    elif isinstance(start, str):
                        first = initial_image(start, start_from, style_images[0],
                                              noise_ratio=noise_ratio, seed=seed)
                    else:
                        first = upsample(start, height, width).to(self.device).expand_as(target)
                        first = luminance(first) if original_colors else first
                    result = optimize(loss_fn, first, num_steps=scale_steps_here, optimizer=optimizer,
                                      learning_rate=learning_rate, history_size=history_size,
                                      callback=on_step if progress or callback else None,
                                      precision=self.precision, cuda_graphs=self.cuda_graphs,
                                      avg_decay=avg_decay)
                except (RuntimeError, MemoryError) as exc:
                    if isinstance(exc, MemoryLimitError) or not _is_out_of_memory(exc):
                        raise
                    raise MemoryLimitError(
                        f"out of memory on {self.device} for a {width}x{height} px image; use "
                        f"--tile or a smaller --size (e.g. {max(height, width) // 2})") from exc
                done += scale_steps_here
        result = finish(result)
        if isinstance(content, torch.Tensor):
            result = result.to(content.device)
            return result[0] if content.dim() == 3 else result
        return tensor_to_image(result)


def stylize(content: ImageInput, style: Union[ImageInput, Sequence[ImageInput]],
            **options: Any) -> Union[Image.Image, torch.Tensor]:
    """One-shot style transfer: ``StyleTransfer(**network options)(content, style, **the rest)``.

    Network options are those of :class:`StyleTransfer` (``weights``, ``device``, layers, ...);
    the others are those of :meth:`StyleTransfer.__call__` (``size``, ``num_steps``, ...).
    """
    network = {name: options.pop(name) for name in NETWORK_OPTIONS if name in options}
    return StyleTransfer(**network)(content, style, **options)
