"""Many images in one run: a folder or glob of contents in, a folder out, split across ranks.

One output per input, named after the input's stem. Under ``torchrun`` (``RANK`` and
``WORLD_SIZE`` set, or ``torch.distributed`` initialized) each rank takes one contiguous block of
the sorted inputs, so every image is done exactly once, and a chain of frames breaks only where
one rank's block ends. The split is made before existing outputs are skipped
(``skip_existing``), so ranks that resume at different moments still agree on it. Same-size
images are optimized together as one batch (each its own objective and L-BFGS state);
``chain=True`` starts each frame from the previous frame's result instead (``--init previous``),
one frame at a time. Each output can have a JSON trace beside it (options and per-step losses),
written atomically like the images.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from loaders.files import atomic_write

from .images import ImageError, fit_size, image_to_tensor, load_image, resize, save_image
from .scales import DEFAULT_MIN_SIZE, scale_sizes, scale_steps
from .transfer import LBFGS_HISTORY, available_memory, evaluation_bytes

__all__ = ["IMAGE_SUFFIXES", "MAX_BATCH", "is_many", "list_inputs", "rank_and_world", "shard",
           "output_paths", "image_size", "auto_batch_size", "snapshot_path", "write_trace",
           "stylize_files"]

logger = logging.getLogger("torchstyle")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
MAX_BATCH = 16  # the largest automatic batch on a GPU
Job = tuple[Path, Path]  # (content, output)


def is_many(content: str) -> bool:
    """Whether ``content`` names several images: a folder, or a glob pattern."""
    return Path(content).is_dir() or glob.has_magic(content)


def list_inputs(source: str) -> list[Path]:
    """The image files of a folder (not its subfolders) or of a glob pattern, sorted by name."""
    if Path(source).is_dir():
        found = [p for p in Path(source).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        where = f"folder {source} holds"
    else:
        found = [Path(p) for p in glob.glob(source) if Path(p).suffix.lower() in IMAGE_SUFFIXES]
        where = f"pattern {source} matches"
    files = sorted(p for p in found if p.is_file())
    if not files:
        raise ImageError(f"{where} no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks: ``torch.distributed``'s, else ``RANK`` and
    ``WORLD_SIZE`` (what ``torchrun`` sets), else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    rank, world = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    try:
        rank_number, world_number = int(rank), int(world)
    except ValueError:
        raise ValueError(f"RANK={rank!r} and WORLD_SIZE={world!r} must be whole numbers") from None
    if not 0 <= rank_number < world_number:
        raise ValueError(f"RANK={rank_number} is not a rank of WORLD_SIZE={world_number}")
    return rank_number, world_number


def shard(items: Sequence[Any], rank: int, world: int) -> list[Any]:
    """Rank ``rank``'s contiguous block of ``items`` (blocks differ in length by one at most)."""
    return list(items[len(items) * rank // world:len(items) * (rank + 1) // world])


def output_paths(inputs: Sequence[Path], folder: Path, suffix: str) -> list[Path]:
    """``folder/<input stem><suffix>`` for each input; two inputs with one stem are refused."""
    outputs, seen = [], {}
    for path in inputs:
        output = folder / f"{path.stem}{suffix}"
        if output in seen:
            raise ImageError(f"{seen[output]} and {path} would both be written to {output}; "
                             f"rename one")
        seen[output] = path
        outputs.append(output)
    return outputs


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file after its EXIF orientation, read from its header."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"{path} is not an image file (Pillow cannot identify it)") from exc
    return (width, height) if turned else (height, width)


def auto_batch_size(transfer, height: int, width: int, optimizer: str, history_size: int) -> int:
    """How many ``height x width`` images to optimize together: on CUDA as many as free memory
    holds, up to :data:`MAX_BATCH`; elsewhere 1 (a CPU gains nothing from batches)."""
    if transfer.device.type != "cuda":
        return 1
    available = available_memory(transfer.device)
    for batch in range(MAX_BATCH, 1, -1):
        if evaluation_bytes(transfer.vgg, height, width, optimizer, history_size, batch) <= available:
            return batch
    return 1


def snapshot_path(output: Path, step: int, total: int) -> Path:
    """``<stem>_<step><ext>``, the step zero-padded to the digits of ``total`` so names sort."""
    return output.with_name(f"{output.stem}_{step:0{len(str(total))}d}{output.suffix}")


def write_trace(path: Path, record: dict) -> Path:
    """Write ``record`` as JSON to ``path`` atomically (temporary file, then rename)."""
    with atomic_write(path) as stream:
        stream.write(json.dumps(record, indent=1).encode())
    return path


def _groups(shapes: Sequence[tuple[int, int]], batch_sizes: dict) -> list[list[int]]:
    """Indices into ``shapes`` in batches of one shape, up to ``batch_sizes[shape]`` each, the
    shapes in order of first appearance."""
    by_shape: dict[tuple[int, int], list[int]] = {}
    for index, shape in enumerate(shapes):
        by_shape.setdefault(shape, []).append(index)
    return [indices[i:i + batch_sizes[shape]] for shape, indices in by_shape.items()
            for i in range(0, len(indices), batch_sizes[shape])]


def stylize_files(transfer, jobs: Sequence[Job], styles: Iterable, *, size: Optional[int] = 512,
                  batch_size: int = 1, chain: bool = False, bits: int = 8, save_every: int = 0,
                  trace: Optional[dict] = None, progress: bool = False, **options: Any) -> list[Path]:
    """Stylize each ``(content, output)`` job with ``transfer`` and write its output.

    ``batch_size`` (0: :func:`auto_batch_size`) same-size images go together; ``chain`` starts
    each image from the previous result (one at a time). ``save_every`` also writes snapshots
    (never one equal to the output); ``trace`` (the options to record) writes ``<output>.json``
    with them and the per-step losses. Other ``options`` go to ``transfer``. Returns the outputs.
    """
    styles = list(styles)
    shapes = []
    for content, _ in jobs:
        height, width = image_size(content)
        shapes.append(fit_size(height, width, size or max(height, width), transfer.vgg.min_side))
    if chain:
        groups = [[index] for index in range(len(jobs))]
    else:
        optimizer, history = options.get("optimizer", "lbfgs"), options.get("history_size", LBFGS_HISTORY)
        groups = _groups(shapes, {shape: batch_size or auto_batch_size(transfer, *shape, optimizer, history)
                                  for shape in set(shapes)})
    written, previous = [], None
    many = len(jobs) > 1
    with tqdm(total=len(jobs), unit="image", desc="images", disable=not (progress and many)) as bar:
        for group in groups:
            height, width = shapes[group[0]]
            # Refuse a size that cannot fit even in tiles before the contents are resized to it.
            transfer._plan_tile(height, width, len(group), options.get("tile"), options.get("tile_halo"),
                                options.get("optimizer", "lbfgs"), options.get("history_size", LBFGS_HISTORY))
            contents = torch.cat([resize(image_to_tensor(load_image(jobs[i][0])), max(height, width),
                                         transfer.vgg.min_side) for i in group])
            outputs = [jobs[i][1] for i in group]
            scales = len(scale_sizes(max(height, width), options.get("min_size", DEFAULT_MIN_SIZE)))
            total = sum(scale_steps(scales, options.get("num_steps", 300), options.get("coarse_steps")))
            rows: list[list[dict]] = [[] for _ in group]

            def on_step(step: int, losses: dict, image: torch.Tensor) -> None:
                for b, output in enumerate(outputs):
                    if trace is not None:
                        mine = {k: v[b] if isinstance(v, list) else v for k, v in losses.items()}
                        rows[b].append({"step": step, "size": list(image.shape[-2:]), **mine})
                    if save_every and step % save_every == 0 and step < total:
                        save_image(image[b:b + 1], snapshot_path(output, step, total), bits)

            started = time.perf_counter()
            init = previous if chain and previous is not None else options.get("init", "content")
            result = transfer(contents, styles, size=None, progress=progress,
                              callback=on_step if trace is not None or save_every else None,
                              **{**options, "init": init})
            for b, output in enumerate(outputs):
                save_image(result[b:b + 1], output, bits)
                if trace is not None:
                    write_trace(output.with_suffix(".json"), {
                        "content": str(jobs[group[b]][0]), "output": str(output), "options": trace,
                        "seconds": round(time.perf_counter() - started, 3), "steps": rows[b]})
                logger.info("wrote %s (%dx%d px, %d steps, %.1f s)", output, width, height, total,
                            time.perf_counter() - started)
                written.append(output)
            previous = result[-1:]
            bar.update(len(group))
    return written
