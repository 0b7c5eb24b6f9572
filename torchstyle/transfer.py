"""The optimization loop of Gatys et al.: the image's pixels are the only tensor optimized.

Owns the device choice (CUDA, then MPS, then CPU), numeric precision (TF32 or bf16 autocast on
CUDA), the initial image, the memory check, one *evaluation* (forward + backward through the
cut VGG) and the L-BFGS / Adam loop with its per-step callback; on CUDA each whole step
(evaluation and optimizer update) is replayed from one CUDA graph. One step is one evaluation:
L-BFGS (:class:`~torchstyle.lbfgs.SyncFreeLBFGS`) takes ``torch.optim.LBFGS``'s steps with
``max_iter=1`` and no line search, so its history carries over from step to step, and never
waits for the GPU. A batch of images is evaluated in one forward and backward pass, and each
image keeps its own objective and its own L-BFGS state; iterate averaging (``avg_decay``) keeps
an exponential moving average of the iterates, as crowsonkb's style-transfer-pytorch does.

Valid pixel range: the loss is evaluated at ``clamp(image, 0, 1)`` and that clamped image is what
callbacks and the caller get. Clamping inside the function keeps L-BFGS's curvature pairs
consistent; clamping the tensor in place between steps does not, and made L-BFGS diverge.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .lbfgs import SyncFreeLBFGS
from .vgg import VGGFeatures

__all__ = [
    "INITS", "OPTIMIZERS", "PRECISIONS", "MemoryLimitError", "select_device",
    "resolve_precision", "precision_flags", "autocast", "initial_image", "available_memory",
    "evaluation_bytes", "check_memory", "make_optimizer", "Evaluation", "CUDAGraphed",
    "IterateAverage", "optimize",
]

logger = logging.getLogger(__name__)

Callback = Callable[[int, dict[str, Any], torch.Tensor], None]
Terms = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor], Terms]

INITS = ("content", "style", "noise", "mix")
OPTIMIZERS = ("lbfgs", "adam")
PRECISIONS = ("auto", "fp32", "tf32", "bf16")
ADAM_LEARNING_RATE = 0.02
LBFGS_HISTORY = 100  # torch's default; each entry keeps two image-sized vectors
GRAPH_WARMUP = 3  # eager steps before a CUDA graph capture: lazy allocations, cuDNN plans
# Peak memory of one evaluation over the bytes of one forward pass's activations: measured
# 1.0-1.2 on CPU at 512-1024 px (benchmarks/style.py); headroom for allocator caches, cuDNN
# workspaces and CUDA graph pools.
MEMORY_FACTOR = 1.5
# Image-sized buffers alive during a tiled evaluation: the pixels, their gradient twice, the
# clamped copy, the content targets (conv4_2: 512 channels at 1/8 size, 2.7 images) and slack.
TILED_IMAGE_BUFFERS = 10


class MemoryLimitError(MemoryError):
    """The image is too large for the device's memory; the message suggests a smaller size."""


def select_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` or ``"auto"`` picks CUDA, then MPS, then CPU."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA is not available on this machine; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("MPS is not available on this machine; use --device cpu")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` becomes ``"tf32"`` on CUDA and ``"fp32"`` elsewhere; impossible choices error."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "tf32" if device.type == "cuda" else "fp32"
    if precision == "tf32" and device.type != "cuda":
        return "fp32"  # TF32 exists only on CUDA tensor cores
    if precision == "bf16" and device.type not in ("cuda", "cpu"):
        raise ValueError(f"bf16 autocast is not supported on {device.type}; use fp32")
    return precision


@contextmanager
def precision_flags(precision: str) -> Iterator[None]:
    """TF32 matmuls and convolutions while inside (CUDA, ``"tf32"`` and ``"bf16"``); restored after.

    cuDNN autotuning (``cudnn.benchmark``) stays as the caller set it: on an H200 it gained
    nothing here (within 2%) and took 33 GiB of workspace at 512 px, 130 GiB at 1024 px.
    """
    if precision not in ("tf32", "bf16"):
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9; mixing with allow_tf32 is an error
        saved = (matmul.fp32_precision, cudnn.conv.fp32_precision)
        matmul.fp32_precision = cudnn.conv.fp32_precision = "tf32"
    else:
        saved = (matmul.allow_tf32, cudnn.allow_tf32)
        matmul.allow_tf32 = cudnn.allow_tf32 = True
    try:
        yield
    finally:
        if hasattr(matmul, "fp32_precision"):
            matmul.fp32_precision, cudnn.conv.fp32_precision = saved
        else:
            matmul.allow_tf32, cudnn.allow_tf32 = saved


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """bf16 autocast for ``precision="bf16"`` (graph-safe: no cast cache), else nothing."""
    if precision != "bf16":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


def initial_image(init: str, content: torch.Tensor, style: torch.Tensor, *,
                  noise_ratio: float = 0.6, seed: Optional[int] = None) -> torch.Tensor:
    """The starting image: ``content``, ``style`` (resized to the content), uniform ``noise``,
    or ``mix`` = ``noise_ratio · noise + (1 − noise_ratio) · content`` (the assignment used 0.6).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if init == "content":
        return content.clone()
    if init == "style":
        resized = F.interpolate(style, size=content.shape[-2:], mode="bicubic", align_corners=False)
        return resized.clamp(0, 1).expand_as(content).clone()
    if not 0.0 <= noise_ratio <= 1.0:
        raise ValueError(f"noise_ratio must be between 0 and 1, got {noise_ratio}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    noise = torch.rand(content.shape, generator=generator).to(content.device, content.dtype)
    if init == "noise":
        return noise
    return noise_ratio * noise + (1.0 - noise_ratio) * content


def _cgroup_free() -> Optional[int]:
    """Bytes left under this process's cgroup v2 memory limit, when there is one."""
    folder = Path("/sys/fs/cgroup")
    try:
        limit = (folder / "memory.max").read_text().strip()
        current = int((folder / "memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) - current


def available_memory(device: torch.device) -> Optional[int]:
    """Bytes this process can still allocate on ``device``; ``None`` if unknown (MPS, non-Linux)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu" or not os.path.exists("/proc/meminfo"):
        return None
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    free = int(fields["MemAvailable"].split()[0]) * 1024
    cgroup = _cgroup_free()
    return free if cgroup is None else min(free, cgroup)


def evaluation_bytes(extractor: VGGFeatures, height: int, width: int, optimizer: str = "lbfgs",
                     history_size: int = LBFGS_HISTORY, batch: int = 1,
                     tile: Optional[int] = None) -> float:
    """Memory to optimize ``batch`` images of ``height x width``: evaluation plus optimizer state.

    L-BFGS keeps two image-sized vectors per history entry (at ``history_size=100`` about as
    much as VGG's activations); Adam keeps two moments. With ``tile``, one ``tile x tile`` crop's
    activations are alive at a time, beside image-sized buffers (the image, its gradient, the
    content targets).
    """
    image = 3 * height * width * 4 * batch
    state = 2 * history_size * image if optimizer == "lbfgs" else 2 * image
    if tile is None:
        return MEMORY_FACTOR * extractor.activation_bytes(height, width, batch) + state
    crop = extractor.activation_bytes(min(tile, height), min(tile, width), batch)
    return MEMORY_FACTOR * crop + TILED_IMAGE_BUFFERS * image + state


def check_memory(needed: float, height: int, width: int, device: torch.device,
                 advice: str = "use a smaller --size") -> None:
    """Raise :class:`MemoryLimitError` if ``needed`` bytes for a ``height x width`` image won't fit.

    ``advice`` opens the hint; the hint's size assumes memory grows with the pixel count.
    """
    available = available_memory(device)
    if available is None or needed <= available:
        return
    fits = int(max(height, width) * math.sqrt(available / needed) * 0.9) // 16 * 16
    raise MemoryLimitError(
        f"a {width}x{height} px image needs about {_gib(needed)} on {device} but only "
        f"{_gib(available)} is free; {advice} (about {fits} px fits)")


def _gib(nbytes: float) -> str:
    """``nbytes`` in GiB, or in MiB under one GiB."""
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"


def make_optimizer(name: str, image: Union[torch.Tensor, Sequence[torch.Tensor]],
                   learning_rate: Optional[float] = None,
                   history_size: int = LBFGS_HISTORY, capturable: bool = False) -> torch.optim.Optimizer:
    """L-BFGS (one evaluation per ``step()``, history kept; the steps of
    ``torch.optim.LBFGS(max_iter=1)`` without its host syncs) over one tensor, or Adam over
    ``image`` (a tensor or a list: Adam treats each element alone anyway).
    ``capturable``: steps that a CUDA graph can capture."""
    params = [image] if isinstance(image, torch.Tensor) else list(image)
    if name == "lbfgs":
        return SyncFreeLBFGS(params, lr=learning_rate or 1.0, history_size=history_size, capturable=capturable)
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate or ADAM_LEARNING_RATE, capturable=capturable)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


class Evaluation:
    """One forward + backward of ``loss_fn`` at ``clamp(images, 0, 1)``: fills each image's ``grad``.

    ``images`` is one tensor or a list of ``(1, 3, H, W)`` tensors evaluated as one batch; the
    loss's ``total`` holds one value per image (or is a scalar) and its sum is differentiated.
    """

    def __init__(self, loss_fn: LossFn, images: Union[torch.Tensor, Sequence[torch.Tensor]],
                 precision: str = "fp32") -> None:
        self.loss_fn, self.precision = loss_fn, precision
        self.images = [images] if isinstance(images, torch.Tensor) else list(images)

    def __call__(self) -> Terms:
        """A fresh gradient (not accumulated) and the loss terms, detached."""
        for image in self.images:
            image.grad = None
        with autocast(self.precision, self.images[0].device):
            clamped = [image.clamp(0, 1) for image in self.images]
            terms = self.loss_fn(clamped[0] if len(clamped) == 1 else torch.cat(clamped))
        terms["total"].sum().backward()
        return {name: value.detach() for name, value in terms.items()}


class IterateAverage:
    """An exponential moving average of the iterates, bias-corrected (crowsonkb's ``EMA``):
    ``value = Σ_t (1 - d) d^(T-t) x_t / (1 - d^T)``. In place, so a CUDA graph can capture it."""

    def __init__(self, images: Sequence[torch.Tensor], decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"avg_decay must be in [0, 1), got {decay}")
        self.images, self.decay = list(images), decay
        self.value = torch.zeros_like(torch.cat(self.images).detach())
        self.accum = torch.ones((), dtype=self.value.dtype, device=self.value.device)
        self.update()

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current (clamped) iterates in."""
        self.accum.mul_(self.decay)
        self.value.mul_(self.decay).add_(torch.cat(self.images).clamp(0, 1), alpha=1 - self.decay)

    def get(self) -> torch.Tensor:
        """The averaged images, ``(B, 3, H, W)``."""
        return self.value / (1 - self.accum)


class CUDAGraphed:
    """``fn`` captured once into a CUDA graph on ``stream``, replayed by each call.

    Run ``fn`` eagerly on ``stream`` a few times first: cuDNN autotuning and lazy allocations
    cannot happen inside a capture. What ``fn`` reads and writes keeps its memory between replays
    (state must change in place), and each replay refreshes the tensors it returned.
    """

    def __init__(self, fn: Callable[[], Terms], stream: torch.cuda.Stream) -> None:
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=stream):
            self.outputs = fn()

    def __call__(self) -> Terms:
        """Replay the captured kernels; the returned tensors hold this replay's results."""
        self.graph.replay()
        return self.outputs


def _use_cuda_graphs(cuda_graphs: Optional[bool], image: torch.Tensor, loss_fn: LossFn) -> bool:
    """``None`` means: on CUDA, when the loss can be captured (a tiled one cannot: its tiles move
    every step); ``True`` off CUDA or with such a loss is an error."""
    capturable = getattr(loss_fn, "capturable", True)
    if cuda_graphs and not image.is_cuda:
        raise ValueError("cuda_graphs=True needs a CUDA device")
    if cuda_graphs and not capturable:
        raise ValueError("a tiled evaluation cannot be captured into a CUDA graph; "
                         "drop cuda_graphs=True (--cuda-graphs) or the tiles")
    return image.is_cuda and capturable if cuda_graphs is None else cuda_graphs


def _capture(step: Callable[[], Terms], stream: torch.cuda.Stream) -> Callable[[], Terms]:
    """``step`` replayed from a CUDA graph, or ``step`` itself when the capture fails."""
    try:
        return CUDAGraphed(step, stream)
    except RuntimeError as exc:
        logger.warning("CUDA graph capture failed (%s); stepping eagerly", exc)
        return step


def _as_floats(terms: Terms) -> dict[str, Any]:
    """Loss terms as floats (one image) or lists of floats (a batch), in one read from the device."""
    values = torch.stack([v.float().reshape(-1) for v in terms.values()]).tolist()
    return {name: row[0] if len(row) == 1 else row for name, row in zip(terms, values)}


def optimize(loss_fn: LossFn, image: torch.Tensor, *, num_steps: int = 300,
             optimizer: str = "lbfgs", learning_rate: Optional[float] = None,
             callback: Optional[Callback] = None, precision: str = "fp32",
             cuda_graphs: Optional[bool] = None, history_size: int = LBFGS_HISTORY,
             avg_decay: float = 0.0) -> torch.Tensor:
    """Minimize ``loss_fn(image)["total"]`` over a copy of ``image``'s pixels; return the result.

    ``image`` is ``(B, 3, H, W)``: the images of a batch are evaluated together, each with its own
    optimizer state (one L-BFGS per image), so each takes the steps it would take alone. The
    loss sees the pixels clamped to ``[0, 1]``, and so does everyone else. After each step,
    ``callback(step, losses, image)`` gets the step number (from 1), the loss terms as floats
    (lists of ``B`` floats for a batch) and the (clamped) images just evaluated, or their
    running average when ``avg_decay > 0`` (which is then also the result). ``history_size`` is
    L-BFGS's memory length. With CUDA graphs (``None``: on CUDA), the first ``GRAPH_WARMUP``
    steps run eagerly and the rest replay one captured step: evaluation and optimizer updates
    in a single launch.
    """
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}")
    images = [part.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
              for part in image.split(1)]
    graphs = _use_cuda_graphs(cuda_graphs, image, loss_fn)
    optimizers = ([make_optimizer(optimizer, part, learning_rate, history_size, capturable=graphs)
                   for part in images] if optimizer == "lbfgs" else
                  [make_optimizer(optimizer, images, learning_rate, history_size, capturable=graphs)])
    evaluate = Evaluation(loss_fn, images, precision)
    average = IterateAverage(images, avg_decay) if avg_decay else None

    def current() -> torch.Tensor:
        """What callbacks see and what is returned: the clamped iterates or their average."""
        return average.get() if average is not None else torch.cat(images).detach().clamp(0, 1)

    def step() -> Terms:
        """One evaluation, at the evaluation's precision, then each optimizer's update."""
        terms: Terms = {}

        def closure() -> torch.Tensor:
            with precision_flags(precision):  # the evaluation's precision, never the optimizer's
                terms.update(evaluate())
            return terms["total"]

        optimizers[0].step(closure)
        for index, other in enumerate(optimizers[1:], start=1):  # their gradients are filled
            other.step(lambda index=index: terms["total"][index])
        if average is not None:
            average.update()
        return terms

    stream = torch.cuda.Stream(image.device) if graphs else None
    if stream is not None:
        stream.wait_stream(torch.cuda.current_stream(image.device))
    run = step
    with torch.cuda.stream(stream):  # no-op for None
        for number in range(1, num_steps + 1):
            if graphs and number == GRAPH_WARMUP + 1:
                run = _capture(step, stream)
            terms = run()
            if callback is not None:
                callback(number, _as_floats(terms), current())
    if stream is not None:
        torch.cuda.current_stream(image.device).wait_stream(stream)
    return current()
