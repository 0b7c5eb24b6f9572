"""The command line: ``python -m torchstyle.run content.jpg style.jpg [more styles] -o out.png``.

Also installed as the console script ``torchstyle``. ``torchstyle DIR style.jpg -o OUTDIR``
(or a quoted glob such as ``'frames/*.png'``) stylizes every image of a folder into ``OUTDIR``,
split across ranks under ``torchrun`` (:mod:`torchstyle.folders`). A tqdm bar shows the losses
(and one the images); the output, every ``--save-every`` snapshot (``<stem>_<step><ext>``, the
step zero-padded, never the last step, which is the output) and the ``--trace`` JSON are
written atomically. User errors (missing or damaged files, a missing or unwritable output
folder, an output that is an input, an image too large for memory, weights that cannot be found
or read, an unknown device) print one line and exit 1, before any optimization where they can
be known; bad arguments one line and exit 2. ``torchstyle serve`` starts the local web page
instead (:mod:`torchstyle.serve`).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, Optional, Union

import torch

from . import COLOR_TRANSFERS, StyleTransfer, __version__
from .folders import (image_size, is_many, list_inputs, output_paths, rank_and_world, shard,
                      stylize_files)
from .images import ImageError, check_bits, check_output_path, load_image
from .scales import DEFAULT_MIN_SIZE
from .transfer import INITS, LBFGS_HISTORY, OPTIMIZERS, PRECISIONS, MemoryLimitError
from .vgg import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, DEFAULT_WEIGHTS, WeightsError

__all__ = ["build_parser", "main"]

logger = logging.getLogger("torchstyle")


def _names(text: str) -> list[str]:
    """``"conv1_1,conv2_1"`` -> ``["conv1_1", "conv2_1"]``."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _numbers(text: str) -> list[float]:
    """``"0.7,0.3"`` -> ``[0.7, 0.3]``."""
    try:
        return [float(value) for value in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}") from None


def _layer_weights(text: str) -> Union[str, list[float]]:
    """``equal``, ``deeper`` or comma-separated numbers, one per style layer."""
    return text if text in ("equal", "deeper") else _numbers(text)


def _decay(text: str) -> float:
    """An argparse type: a number in ``[0, 1)``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value:g}")
    return value


def _count(minimum: int):
    """An argparse type: a whole number of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line on stderr (exit 2) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``torchstyle`` (defaults match :class:`torchstyle.StyleTransfer`)."""
    parser = _Parser(
        prog="torchstyle", description="Neural style transfer (Gatys et al.) on a frozen VGG-19.")
    parser.add_argument("content", help="the content image, or a folder or quoted glob of them")
    parser.add_argument("styles", nargs="+", metavar="style", help="one or more style images")
    parser.add_argument("-o", "--output", default=None,
                        help="output image, its folder must exist (default: out.png); for a folder "
                             "or glob of contents, the output folder (created if missing; "
                             "default: the current folder)")
    parser.add_argument("--version", action="version", version=f"torchstyle {__version__}")
    parser.add_argument("--size", type=_count(0), default=512,
                        help="long edge in pixels; 0 keeps the content's size; a side under 16 px "
                             "(what VGG-19's deepest layers need) is stretched to it (default: 512)")
    parser.add_argument("--steps", type=_count(0), default=300,
                        help="optimizer steps at the last (full) scale (default: 300)")
    parser.add_argument("--min-size", type=_count(1), default=DEFAULT_MIN_SIZE, metavar="PX",
                        help="coarse to fine: start at this long edge and grow by about sqrt(2) "
                             "per scale up to --size; at or above --size: one scale "
                             "(default: %(default)s)")
    parser.add_argument("--coarse-steps", type=_count(0), default=None, metavar="N",
                        help="steps at each scale before the last (default: --steps)")
    parser.add_argument("--tile", type=_count(0), default=None, metavar="PX",
                        help="evaluate in tiles of this side (halo included), the same objective; "
                             "0: never (default: only when the image will not fit in memory)")
    parser.add_argument("--tile-halo", type=_count(0), default=None, metavar="PX",
                        help="context around each tile's core (default: VGG's receptive field, "
                             "exact; less is faster and approximate)")
    parser.add_argument("--content-weight", type=float, default=1.0, help="(default: %(default)g)")
    parser.add_argument("--style-weight", type=float, default=1e6, help="(default: %(default)g)")
    parser.add_argument("--tv-weight", type=float, default=0.0,
                        help="total-variation smoothing (default: %(default)g)")
    parser.add_argument("--init", default="content", metavar="{" + ",".join(INITS) + ",previous,PATH}",
                        help="starting image: previous chains the frames of a folder (each from "
                             "the result before it), PATH starts from an image file "
                             "(default: %(default)s)")
    parser.add_argument("--noise-ratio", type=float, default=0.6,
                        help="noise share for --init mix (default: %(default)g)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs",
                        help="(default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="step size (default: 1 for L-BFGS, 0.02 for Adam)")
    parser.add_argument("--lbfgs-history", type=_count(1), default=LBFGS_HISTORY,
                        help="L-BFGS memory length; each entry holds two image-sized vectors "
                             "(default: %(default)s)")
    parser.add_argument("--style-layers", type=_names, default=",".join(DEFAULT_STYLE_LAYERS),
                        help="comma-separated conv/relu names (default: %(default)s)")
    parser.add_argument("--content-layers", type=_names, default=",".join(DEFAULT_CONTENT_LAYERS),
                        help="comma-separated conv/relu names (default: %(default)s)")
    parser.add_argument("--layer-weights", type=_layer_weights, default="equal",
                        help="equal (paper), deeper (lecture) or numbers, one per style layer")
    parser.add_argument("--style-blend", type=_numbers, default=None,
                        help="comma-separated weights of the style images (default: equal)")
    parser.add_argument("--style-scale", type=float, default=1.0,
                        help="style image size relative to --size (default: 1)")
    parser.add_argument("--original-colors", action="store_true",
                        help="transfer luminance only and keep the content's colors")
    parser.add_argument("--color-transfer", choices=[c for c in COLOR_TRANSFERS if c], default=None,
                        help="histogram: give the output the content's color histogram")
    parser.add_argument("--normalize-gradients", action="store_true",
                        help="divide each loss term's gradient by its L1 norm (neural-style; "
                             "weights then need its scale, e.g. --content-weight 5 --style-weight 100)")
    parser.add_argument("--avg-decay", type=_decay, default=0.0, metavar="D",
                        help="return the running average of the iterates, decay D per step "
                             "(crowsonkb uses 0.99; default: 0, off)")
    parser.add_argument("--pooling", choices=("max", "avg"), default="max",
                        help="(default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto: TF32 on CUDA, float32 elsewhere; bf16: bf16 autocast (also on CPUs "
                             "with AVX-512 BF16 or AMX: about 1.8x faster there)")
    parser.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                        help="replay each step (evaluation + update) from a CUDA graph (default: on for CUDA)")
    parser.add_argument("--weights", default=None, metavar="PATH",
                        help="a local VGG-19 state_dict (default: torchvision's IMAGENET1K_V1, "
                             "downloaded once into the torch hub cache)")
    parser.add_argument("--seed", type=int, default=None, help="seed for noise initialization")
    parser.add_argument("--save-every", type=_count(0), default=0, metavar="N",
                        help="also save the image every N steps as <output stem>_<step><ext>")
    parser.add_argument("--bits", type=int, choices=(8, 16), default=8,
                        help="bits per channel of the output; 16 for .png and .tif (default: 8)")
    parser.add_argument("--trace", action="store_true",
                        help="write <output stem>.json beside each output: options and per-step losses")
    parser.add_argument("--ext", default=".png",
                        help="extension of the outputs of a folder of contents (default: .png)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="skip contents whose output exists (resumes a killed run)")
    parser.add_argument("--batch-size", type=_count(0), default=0, metavar="N",
                        help="same-size images optimized together, each its own objective "
                             "(default 0: as many as fit, up to 16, on CUDA; 1 elsewhere)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    return parser


def _jobs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """Every (content, output) pair of this run, checked; all ranks' pairs, in order."""
    styles = [Path(path) for path in args.styles]
    if not is_many(args.content):
        output = Path(args.output or "out.png")
        check_bits(output, args.bits)
        check_output_path(output, [args.content, *styles])
        load_image(args.content)  # missing, damaged or truncated: now, not after the network loads
        return [(Path(args.content), output)]
    inputs = list_inputs(args.content)
    folder = Path(args.output or ".")
    if folder.exists() and not folder.is_dir():
        raise ImageError(f"output {folder} is a file; with a folder of contents give an output folder")
    if not folder.parent.is_dir():
        raise ImageError(f"the folder of output folder {folder} does not exist; create it first")
    suffix = args.ext if args.ext.startswith(".") else f".{args.ext}"
    outputs = output_paths(inputs, folder, suffix)
    check_bits(outputs[0], args.bits)
    folder.mkdir(exist_ok=True)
    check_output_path(outputs[0])  # format and writable folder
    sources = {path.resolve(): path for path in [*inputs, *styles]}
    for output in outputs:
        if output.resolve() in sources:
            raise ImageError(f"output {output} is also an input image; choose another output folder")
    for path in inputs:
        image_size(path)  # every file is an image, before any work
    return list(zip(inputs, outputs))


def _device(name: str) -> str:
    """Under torchrun on CUDA machines, ``auto`` is this process's own GPU (``LOCAL_RANK``)."""
    local = os.environ.get("LOCAL_RANK")
    if name == "auto" and local is not None and local.isdigit() and torch.cuda.is_available():
        return f"cuda:{int(local) % torch.cuda.device_count()}"
    return name


def _run(args: argparse.Namespace) -> int:
    """Check every path, load the network, stylize this rank's contents, write the outputs."""
    chain = args.init == "previous"
    if chain and not is_many(args.content):
        raise ValueError("--init previous chains the frames of a folder; give a folder or a glob")
    init = "content" if chain else args.init
    if init not in INITS:
        load_image(init)  # an image to start from: checked now
    jobs = _jobs(args)
    styles = [load_image(path) for path in args.styles]
    rank, world = rank_and_world()
    jobs = shard(jobs, rank, world)
    if args.skip_existing:
        existing = [output for _, output in jobs if output.exists()]
        if existing:
            logger.info("skipping %d of %d images whose output exists", len(existing), len(jobs))
        jobs = [job for job in jobs if not job[1].exists()]
    if not jobs:
        logger.info("nothing to do%s", f" on rank {rank} of {world}" if world > 1 else "")
        return 0
    transfer = StyleTransfer(
        style_layers=args.style_layers, content_layers=args.content_layers, pooling=args.pooling,
        weights=args.weights or DEFAULT_WEIGHTS, device=_device(args.device),
        precision=args.precision, cuda_graphs=args.cuda_graphs)
    where = f" (rank {rank} of {world})" if world > 1 else ""
    logger.info("stylizing %s on %s%s", args.content if len(jobs) == 1 else f"{len(jobs)} images",
                transfer.device, where)
    stylize_files(
        transfer, jobs, styles, size=args.size or None, batch_size=args.batch_size, chain=chain,
        bits=args.bits, save_every=args.save_every, progress=not args.quiet,
        trace={"torchstyle": __version__, **vars(args)} if args.trace else None,
        num_steps=args.steps, min_size=args.min_size, coarse_steps=args.coarse_steps,
        tile=args.tile, tile_halo=args.tile_halo, content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, layer_weights=args.layer_weights,
        style_blend_weights=args.style_blend, style_scale=args.style_scale, init=init,
        noise_ratio=args.noise_ratio, optimizer=args.optimizer, learning_rate=args.learning_rate,
        history_size=args.lbfgs_history, original_colors=args.original_colors,
        color_transfer=args.color_transfer, normalize_gradients=args.normalize_gradients,
        avg_decay=args.avg_decay, seed=args.seed)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status (0 done, 1 user error, 130 interrupted).

    ``torchstyle serve ...`` starts the web page instead (:mod:`torchstyle.serve`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:
        from .serve import main as serve
        return serve(argv[1:])
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("torchstyle: %(message)s"))
    logger.addHandler(handler)
    saved_level = logger.level
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        return _run(args)
    except (ImageError, WeightsError, MemoryLimitError, ValueError, OSError) as exc:
        logger.error("error: %s", exc)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)


if __name__ == "__main__":
    sys.exit(main())
