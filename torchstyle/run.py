"""The command line: ``python -m torchstyle.run content.jpg style.jpg [more styles] -o out.png``.

Also installed as the console script ``torchstyle``. A tqdm bar shows the losses; the output
(and every ``--save-every`` snapshot, named ``<stem>_<step><ext>``) is written atomically.
User errors (missing or damaged files, a missing or unwritable output folder, an output that is
an input, an image too large for memory, weights that cannot be found or read, an unknown
device) print one line and exit 1, before any optimization; bad arguments one line and exit 2.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, Optional, Union

from . import StyleTransfer
from .images import ImageError, check_output_path, load_image, save_image
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
    parser.add_argument("content", help="the content image")
    parser.add_argument("styles", nargs="+", metavar="style", help="one or more style images")
    parser.add_argument("-o", "--output", default="out.png",
                        help="output image; its folder must exist (default: out.png)")
    parser.add_argument("--size", type=_count(0), default=512,
                        help="long edge in pixels; 0 keeps the content's size; a side under 16 px "
                             "(what VGG-19's deepest layers need) is stretched to it (default: 512)")
    parser.add_argument("--steps", type=_count(0), default=300, help="optimizer steps (default: 300)")
    parser.add_argument("--content-weight", type=float, default=1.0, help="(default: %(default)g)")
    parser.add_argument("--style-weight", type=float, default=1e6, help="(default: %(default)g)")
    parser.add_argument("--tv-weight", type=float, default=0.0,
                        help="total-variation smoothing (default: %(default)g)")
    parser.add_argument("--init", choices=INITS, default="content",
                        help="starting image (default: %(default)s)")
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
    parser.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    return parser


def _snapshot_saver(output: Path, every: int):
    """A step callback that writes ``<stem>_<step><ext>`` every ``every`` steps."""
    def save(step: int, losses: dict, image) -> None:
        if step % every == 0:
            save_image(image, output.with_name(f"{output.stem}_{step}{output.suffix}"))
    return save


def _run(args: argparse.Namespace) -> int:
    """Check every path, load the images and the network, stylize, write the output."""
    output = check_output_path(args.output, [args.content, *args.styles])
    content = load_image(args.content)
    styles = [load_image(path) for path in args.styles]
    started = time.perf_counter()
    transfer = StyleTransfer(
        style_layers=args.style_layers, content_layers=args.content_layers, pooling=args.pooling,
        weights=args.weights or DEFAULT_WEIGHTS, device=args.device, precision=args.precision,
        cuda_graphs=args.cuda_graphs)
    logger.info("stylizing %s on %s", args.content, transfer.device)
    result = transfer(
        content, styles, size=args.size, num_steps=args.steps, content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, layer_weights=args.layer_weights,
        style_blend_weights=args.style_blend, style_scale=args.style_scale, init=args.init,
        noise_ratio=args.noise_ratio, optimizer=args.optimizer, learning_rate=args.learning_rate,
        history_size=args.lbfgs_history,
        original_colors=args.original_colors, seed=args.seed,
        callback=_snapshot_saver(output, args.save_every) if args.save_every else None,
        progress=not args.quiet)
    save_image(result, output)
    logger.info("wrote %s (%dx%d px, %d steps, %.1f s)", output, result.width, result.height,
                args.steps, time.perf_counter() - started)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status (0 done, 1 user error, 130 interrupted)."""
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
