"""Fast neural style transfer (Gatys et al.) on a frozen torchvision VGG-19: the public API.

    from torchstyle import stylize
    picture = stylize("photo.jpg", "starry_night.jpg", size=512)   # a PIL image
    picture.save("out.png")

:class:`StyleTransfer` loads the network once and stylizes any number of images (paths, PIL
images or ``[0, 1]`` tensors); :func:`stylize` is the one-shot form. The pieces live in
``vgg`` (features and hooks), ``losses``, ``images`` (files and colors) and ``transfer``
(the optimization loop); ``python -m torchstyle.run`` is the command line.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import torch
from PIL import Image
from tqdm.auto import tqdm

from .images import (ImageError, fit_size, image_to_tensor, load_image, luminance,
                     match_luminance, resize, save_image, tensor_to_image, with_chroma_of)
from .losses import (LayerWeights, NeuralStyleLoss, content_loss, gram_matrix, style_loss,
                     tv_loss)
from .transfer import (LBFGS_HISTORY, Callback, MemoryLimitError, autocast, check_memory,
                       evaluation_bytes, initial_image, optimize, precision_flags,
                       resolve_precision, select_device)
from .vgg import (DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, DEFAULT_WEIGHTS, LAYER_NAMES,
                  VGGFeatures, Weights, WeightsError)

__all__ = [
    "StyleTransfer", "stylize", "VGGFeatures", "LAYER_NAMES", "DEFAULT_STYLE_LAYERS",
    "DEFAULT_CONTENT_LAYERS", "DEFAULT_WEIGHTS", "NeuralStyleLoss", "gram_matrix",
    "content_loss", "style_loss", "tv_loss", "optimize", "load_image", "save_image",
    "ImageError", "WeightsError", "MemoryLimitError",
]

ImageInput = Union[str, os.PathLike, Image.Image, torch.Tensor]
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

    def _prepare(self, image: ImageInput, size: Optional[int],
                 needed: Callable[[int, int], float], advice: str) -> torch.Tensor:
        """Any accepted input as ``(1, 3, H, W)`` on the device, long edge ``size`` px.

        ``needed(height, width)`` is checked against free memory before resizing, so an absurd
        ``size`` fails with advice.
        """
        if isinstance(image, torch.Tensor):
            tensor = image.detach().float().cpu()
            tensor = tensor.unsqueeze(0) if tensor.dim() == 3 else tensor
            if tensor.dim() != 4 or tuple(tensor.shape[:2]) != (1, 3):
                raise ValueError(f"expected an image tensor (3, H, W) or (1, 3, H, W), "
                                 f"got shape {tuple(image.shape)}")
            tensor = tensor.clamp(0, 1)
        else:
            tensor = image_to_tensor(image if isinstance(image, Image.Image) else load_image(image))
        size = size or max(tensor.shape[-2:])
        height, width = fit_size(*tensor.shape[-2:], size, self.vgg.min_side)
        check_memory(needed(height, width), height, width, self.device, advice)
        return resize(tensor, size, self.vgg.min_side).to(self.device)

    def __call__(self, content: ImageInput, style: Union[ImageInput, Sequence[ImageInput]], *,
                 size: Optional[int] = 512, num_steps: int = 300, content_weight: float = 1.0,
                 style_weight: float = 1e6, tv_weight: float = 0.0,
                 layer_weights: LayerWeights = "equal",
                 style_blend_weights: Optional[Sequence[float]] = None, style_scale: float = 1.0,
                 init: str = "content", noise_ratio: float = 0.6, optimizer: str = "lbfgs",
                 learning_rate: Optional[float] = None, history_size: int = LBFGS_HISTORY,
                 original_colors: bool = False,
                 seed: Optional[int] = None, callback: Optional[Callback] = None,
                 progress: bool = False) -> Union[Image.Image, torch.Tensor]:
        """Stylize ``content`` with one style image or a list (blended by ``style_blend_weights``).

        ``size`` is the long edge in pixels (``None`` keeps the content's); style images get
        ``style_scale`` times that. ``original_colors`` transfers luminance only and keeps the
        content's colors (Gatys et al. 2016). ``callback(step, losses, image)`` runs after every
        step with the image as it will be returned. A tensor input gives a tensor back (same
        device and rank), anything else a PIL image.
        """
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise ValueError("at least one style image is needed")
        if style_scale <= 0:
            raise ValueError(f"style_scale must be positive, got {style_scale}")
        target = self._prepare(
            content, size, lambda h, w: evaluation_bytes(self.vgg, h, w, optimizer, history_size),
            "use a smaller --size")
        height, width = target.shape[-2:]
        style_size = max(1, round(style_scale * max(height, width)))
        style_images = [self._prepare(s, style_size, self.vgg.activation_bytes,  # forward only
                                      "use a smaller --style-scale or --size") for s in styles]
        if original_colors:
            style_images = [match_luminance(s, target) for s in style_images]

        def finish(image: torch.Tensor) -> torch.Tensor:
            return with_chroma_of(image, target) if original_colors else image

        start_from = luminance(target) if original_colors else target
        with tqdm(total=num_steps, disable=not progress, unit="step", desc="stylize") as bar:
            def on_step(step: int, losses: dict[str, float], image: torch.Tensor) -> None:
                bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
                bar.update()
                if callback is not None:
                    callback(step, losses, finish(image))

            try:
                with precision_flags(self.precision), autocast(self.precision, self.device):
                    loss_fn = NeuralStyleLoss(
                        self.vgg, start_from, style_images, content_layers=self.content_layers,
                        style_layers=self.style_layers, layer_weights=layer_weights,
                        style_blend_weights=style_blend_weights, content_weight=content_weight,
                        style_weight=style_weight, tv_weight=tv_weight)
                start = initial_image(init, start_from, style_images[0], noise_ratio=noise_ratio,
                                      seed=seed)
                result = optimize(loss_fn, start, num_steps=num_steps, optimizer=optimizer,
                                  learning_rate=learning_rate, history_size=history_size,
                                  callback=on_step if progress or callback else None,
                                  precision=self.precision, cuda_graphs=self.cuda_graphs)
            except (RuntimeError, MemoryError) as exc:
                if isinstance(exc, MemoryLimitError) or not _is_out_of_memory(exc):
                    raise
                raise MemoryLimitError(
                    f"out of memory on {self.device} for a {width}x{height} px image; use a "
                    f"smaller --size (e.g. {max(height, width) // 2})") from exc
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
