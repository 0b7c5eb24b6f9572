"""Speed of torchstyle next to a plain implementation of the same algorithm (run on demand, not CI).

``--mode speed`` (the default) prints two markdown tables:

1. seconds per L-BFGS step (one function evaluation: forward + backward through VGG-19 cut after
   conv5_1) and peak memory, at each ``--sizes`` on each ``--devices``; for torchstyle also one
   evaluation alone, so that the optimizer's own share of a step (on CUDA: its syncs) shows;
2. wall time and steps to bring the total loss to a fixed fraction of its start.

``--mode scales``: coarse to fine (each ``--min-sizes``, ``--coarse-steps`` per coarse scale,
``--steps`` at the last) against one scale given the same wall time: the loss at the last
scale when coarse-to-fine ends, the single scale's loss at that moment, and how long the single
scale takes to reach coarse-to-fine's loss. Its objective is the default one times
``--loss-scale`` (content and style weights alike, so the optimum is the same; losses are printed
divided by it): with random weights the gradients are so small that L-BFGS's absolute curvature
test (``s.y > 1e-10``, torch's) rejects every pair at 512 px, and one scale never moves.
``--mode tiles``: s/step and peak memory at each
size, whole and in ``--tile`` px tiles. ``--mode batch`` (CUDA): image-evaluations/s at 512 px
for batches of ``--batches`` images, each its own objective and L-BFGS state.

The plain reference follows the PyTorch neural-style tutorial: torchvision's VGG-19 features
with loss modules inserted after the chosen layers, NCHW float32, no hooks, no graphs. Both sides
use the same objective (same layers, weights, loss formulas, clamped pixels) and the same random
VGG weights (pretrained weights change the values, not the work), so the loss curves agree.
Each measurement runs in a fresh process so that peak memory is its own.

    python benchmarks/style.py                       # CPU, 256 and 512 px
    python benchmarks/style.py --devices cuda --sizes 512 1024 --steps 30
    python benchmarks/style.py --mode scales --sizes 512 --min-sizes 128 256 --steps 20
    python benchmarks/style.py --mode tiles --sizes 1024 2048 4096 --tile 1024
    python benchmarks/style.py --mode batch --devices cuda --batches 1 4 16
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torchstyle import StyleTransfer  # noqa: E402
from torchstyle.losses import NeuralStyleLoss  # noqa: E402
from torchstyle.scales import scale_sizes  # noqa: E402
from torchstyle.transfer import (GRAPH_WARMUP, PRECISIONS, CUDAGraphed, Evaluation,  # noqa: E402
                                 optimize, precision_flags)
from torchstyle.vgg import (DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, IMAGENET_MEAN,  # noqa: E402
                            IMAGENET_STD, LAYER_NAMES, VGGFeatures)

STYLE_WEIGHT = 1e6
# implementation name -> (precision, cuda_graphs) for torchstyle; "plain" is the reference
VARIANTS = {"cpu": ["plain", "torchstyle", "torchstyle bf16"],
            "cuda": ["plain", "torchstyle fp32", "torchstyle fp32+graphs", "torchstyle tf32+graphs",
                     "torchstyle bf16+graphs"]}
SETTINGS = {"torchstyle": ("fp32", False), "torchstyle bf16": ("bf16", False), "torchstyle fp32": ("fp32", False),
            "torchstyle fp32+graphs": ("fp32", True),
            "torchstyle tf32+graphs": ("tf32", True), "torchstyle bf16+graphs": ("bf16", True)}


# --- the plain reference (PyTorch tutorial style) -------------------------------------------
def _plain_gram(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.size()
    f = x.view(b * c, h * w)
    return f @ f.t() / (b * c * h * w)


class _ContentLoss(nn.Module):
    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(x, self.target)
        return x


class _StyleLoss(nn.Module):
    def __init__(self, target_feature: torch.Tensor) -> None:
        super().__init__()
        self.target = _plain_gram(target_feature).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(_plain_gram(x), self.target)
        return x


class _Normalization(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mean = torch.tensor(IMAGENET_MEAN).view(-1, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(-1, 1, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean.to(img.device)) / self.std.to(img.device)


def _plain_model(features: nn.Sequential, content: torch.Tensor, style: torch.Tensor):
    """The tutorial's model: normalization, VGG layers and loss modules, cut after the last loss."""
    model = nn.Sequential(_Normalization())
    content_losses, style_losses = [], []
    for name, layer in zip(LAYER_NAMES, features):
        model.add_module(name, nn.ReLU(inplace=False) if isinstance(layer, nn.ReLU) else layer)
        if name in DEFAULT_CONTENT_LAYERS:
            module = _ContentLoss(model(content))
            model.add_module(f"content_loss_{name}", module)
            content_losses.append(module)
        if name in DEFAULT_STYLE_LAYERS:
            module = _StyleLoss(model(style))
            model.add_module(f"style_loss_{name}", module)
            style_losses.append(module)
        if len(content_losses) == len(DEFAULT_CONTENT_LAYERS) \
                and len(style_losses) == len(DEFAULT_STYLE_LAYERS):
            break
    return model.eval().requires_grad_(False), content_losses, style_losses


def _plain_steps(features, content, style, steps, stamps):
    """L-BFGS as in the tutorial (one evaluation per step), recording (time, loss) per step."""
    model, content_losses, style_losses = _plain_model(features, content, style)
    stamps.append((time.perf_counter(), None))
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image], max_iter=1, history_size=100)

    def closure():
        optimizer.zero_grad()
        model(image.clamp(0, 1))
        style_score = sum(s.loss for s in style_losses) / len(style_losses)
        loss = STYLE_WEIGHT * style_score + sum(c.loss for c in content_losses)
        loss.backward()
        stamps.append((time.perf_counter(), loss.item()))
        return loss

    for _ in range(steps):
        optimizer.step(closure)


def _torchstyle_steps(vgg, content, style, steps, stamps, precision, cuda_graphs) -> NeuralStyleLoss:
    """torchstyle's own loop on the same objective, recording (time, loss) per step; returns the loss."""
    with precision_flags(precision):
        loss = NeuralStyleLoss(vgg, content, [style], content_layers=DEFAULT_CONTENT_LAYERS,
                               style_layers=DEFAULT_STYLE_LAYERS, style_weight=STYLE_WEIGHT)
    stamps.append((time.perf_counter(), None))
    optimize(loss, content, num_steps=steps, precision=precision, cuda_graphs=cuda_graphs,
             callback=lambda step, losses, image: stamps.append((time.perf_counter(),
                                                                 losses["total"])))
    return loss


def _evaluation_seconds(loss, content, precision, cuda_graphs) -> float:
    """Median seconds of one evaluation alone (no optimizer), so that what the optimizer adds to a
    step shows; with ``cuda_graphs`` the evaluation alone is captured and replayed."""
    image = content.clone().requires_grad_(True)
    evaluate = Evaluation(loss, image, precision)
    stream = torch.cuda.Stream(image.device) if cuda_graphs else None
    times = []
    with precision_flags(precision), torch.cuda.stream(stream):
        for _ in range(GRAPH_WARMUP if cuda_graphs else 0):
            evaluate()
        if cuda_graphs:
            evaluate = CUDAGraphed(evaluate, stream)
        for _ in range(4):
            _synchronize(image.device)
            start = time.perf_counter()
            evaluate()
            _synchronize(image.device)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _pictures(size: int, device: torch.device):
    """A smooth content picture and a striped style picture (benchmarks need no real photos)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    content = torch.stack([x, y, 1 - x]) * 0.5 + 0.25
    stripes = (torch.sin((x + y) * 60) > 0).float()
    style = torch.stack([stripes, 1 - stripes, 0.5 * torch.ones_like(x)]) * 0.5 + 0.25
    return content[None].to(device), style[None].to(device)


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def worker(impl: str, device: str, size: int, steps: int) -> dict:
    """One measurement in this process: per-step times, losses and peak memory."""
    device = torch.device(device)
    torch.manual_seed(0)
    vgg = VGGFeatures(DEFAULT_STYLE_LAYERS + DEFAULT_CONTENT_LAYERS, weights=None)
    if impl == "plain":  # torchvision's layout: NCHW (the tutorial makes its ReLUs not in place)
        network = nn.Sequential(*vgg.features).to(device, memory_format=torch.contiguous_format)
    else:
        network = vgg.to(device)
    content, style = _pictures(size, device)
    baseline = _rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stamps: list = []  # (time, loss): first the start of the optimization, then one per step
    loss = None
    if impl == "plain":
        _plain_steps(network, content, style, steps, stamps)
    else:
        loss = _torchstyle_steps(network, content, style, steps, stamps, *SETTINGS[impl])
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline
    evaluation = None if loss is None else _evaluation_seconds(loss, content, *SETTINGS[impl])  # after the peak
    return {"start": stamps[0][0], "stamps": stamps[1:], "peak_mib": peak, "evaluation": evaluation}


def _measure(impl: str, device: str, size: int, steps: int) -> Optional[dict]:
    """One variant's figures from a fresh process; None (its error on stderr) when it fails, so
    that one failing variant does not cost the rest of a scarce GPU run."""
    command = [sys.executable, __file__, "--worker", impl, device, str(size), str(steps)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        print(f"{impl} on {device} at {size} px failed (exit {done.returncode}):\n{done.stderr}", file=sys.stderr)
        return None
    return json.loads(done.stdout.splitlines()[-1])


class _OutOfTime(Exception):
    """Raised from a step callback to stop a run at its time budget."""


def _curve(transfer: StyleTransfer, content, style, budget: Optional[float] = None, **options) -> dict:
    """(seconds, loss) after each step at the last scale, seconds counted from the call.

    Seconds are this process's CPU time (all its threads), not wall time: on a shared machine
    the wall time of runs made one after the other depends on what the others run meanwhile.
    """
    final = tuple(content.shape[-2:])
    points: list = []
    start = time.process_time()

    scale = options.get("content_weight", 1.0)

    def record(step: int, losses: dict, image) -> None:
        now = time.process_time() - start
        if tuple(image.shape[-2:]) == final:
            points.append((now, losses["total"] / scale))
        if budget is not None and now > budget:
            raise _OutOfTime

    try:
        transfer(content, style, size=None, callback=record, **options)
    except _OutOfTime:
        pass
    return {"points": points, "seconds": time.process_time() - start}


def job(spec: dict) -> dict:
    """One measurement of ``--mode scales``, ``tiles`` or ``batch``, in this process."""
    device = torch.device(spec.get("device", "cpu"))
    torch.manual_seed(0)  # the same random VGG weights in every job
    transfer = StyleTransfer(weights=None, device=device, precision=spec.get("precision", "auto"))
    content, style = _pictures(spec["size"], torch.device("cpu"))
    if spec["kind"] == "scales":
        scale = spec.get("loss_scale", 1.0)
        return _curve(transfer, content, style, spec.get("budget"), min_size=spec["min_size"],
                      num_steps=spec["steps"], coarse_steps=spec.get("coarse_steps"),
                      content_weight=scale, style_weight=STYLE_WEIGHT * scale)
    if spec["kind"] == "batch":
        content = content.expand(spec["batch"], -1, -1, -1) * torch.linspace(0.8, 1, spec["batch"]).view(-1, 1, 1, 1)
    baseline = _rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stamps: list = []  # (wall, CPU) seconds after each step
    try:
        transfer(content, style, size=None, min_size=None, num_steps=spec["steps"],
                 tile=spec.get("tile", 0), history_size=spec.get("history", 100),
                 callback=lambda step, losses, image: (_synchronize(device), stamps.append(
                     (time.perf_counter(), time.process_time()))))
    except MemoryError as exc:
        return {"error": str(exc)}
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline)
    return {"step_seconds": [b[0] - a[0] for a, b in zip(stamps, stamps[1:])],
            "step_cpu_seconds": [b[1] - a[1] for a, b in zip(stamps, stamps[1:])], "peak_mib": peak}


def _run_job(spec: dict) -> Optional[dict]:
    """``job(spec)`` in a fresh process (its own peak memory); None when it failed."""
    done = subprocess.run([sys.executable, __file__, "--job", json.dumps(spec)],
                          capture_output=True, text=True)
    if done.returncode:
        print(f"{spec} failed (exit {done.returncode}):\n{done.stderr}", file=sys.stderr)
        return None
    return json.loads(done.stdout.splitlines()[-1])


def _loss_at(points: list, seconds: float) -> Optional[float]:
    """The last loss recorded by ``seconds``."""
    before = [loss for t, loss in points if t <= seconds]
    return before[-1] if before else None


def _scales_table(args) -> int:
    """Coarse to fine against one scale in the same wall time, at each size."""
    print("| size | schedule | steps | CPU seconds | loss at the end | one scale: loss at that time "
          "| one scale: CPU seconds to that loss |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for size in args.sizes:
        runs = {}
        for min_size in args.min_sizes:
            for coarse in args.coarse_steps or [args.steps]:
                runs[min_size, coarse] = _run_job({"kind": "scales", "size": size, "min_size": min_size,
                                                   "steps": args.steps, "coarse_steps": coarse,
                                                   "loss_scale": args.loss_scale})
        budget = 1.5 * max([r["seconds"] for r in runs.values() if r] or [60.0])
        single = _run_job({"kind": "scales", "size": size, "min_size": None,
                           "steps": 100 * args.steps, "budget": budget, "loss_scale": args.loss_scale})
        if single is None:
            return 1
        for (min_size, coarse), run in runs.items():
            if run is None:
                failed += 1
                continue
            seconds, loss = run["seconds"], run["points"][-1][1]
            reached = [t for t, value in single["points"] if value <= loss]
            schedule = " → ".join(map(str, scale_sizes(size, min_size)))
            steps = f"{coarse} per coarse scale + {args.steps}"
            at_time = _loss_at(single["points"], seconds)
            at_time = "-" if at_time is None else f"{at_time:.4g}"
            to_loss = f"{reached[0]:.0f}" if reached else f"> {single['seconds']:.0f}"
            print(f"| {size} px | {schedule} | {steps} | {seconds:.0f} | {loss:.4g} | {at_time} | "
                  f"{to_loss} |", flush=True)
        points = single["points"]
        print(f"| {size} px | one scale | {len(points)} in {single['seconds']:.0f} s | "
              f"{single['seconds']:.0f} | {points[-1][1]:.4g} | | |", flush=True)
    return int(failed > 0)


def _tiles_table(args) -> int:
    """s/step and peak memory, whole and tiled, at each size."""
    print("| device | size | evaluation | s / step | CPU s / step | peak memory |")
    print("|---|---|---|---|---|---|")
    failed = 0
    for device in args.devices:
        for size in args.sizes:
            for tile in (0, args.tile):
                name = "whole" if tile == 0 else f"{tile} px tiles"
                result = _run_job({"kind": "tiles", "device": device, "size": size, "steps": args.steps,
                                   "tile": tile, "history": args.history})
                if result is None or "error" in result:
                    failed += result is None
                    reason = "failed (see stderr)" if result is None else result["error"]
                    print(f"| {device} | {size} px | {name} | {reason} | | |", flush=True)
                    continue
                print(f"| {device} | {size} px | {name} | {statistics.median(result['step_seconds']):.2f} | "
                      f"{statistics.median(result['step_cpu_seconds']):.2f} | {result['peak_mib']:.0f} MiB |",
                      flush=True)
    return int(failed > 0)


def _batch_table(args) -> int:
    """Image-evaluations/s for batches of images, each its own objective and L-BFGS."""
    print("| device | size | precision | batch | s / step | image-evaluations / s | peak memory |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for device in args.devices:
        for precision in args.precisions:
            for batch in args.batches:
                result = _run_job({"kind": "batch", "device": device, "size": args.sizes[0],
                                   "steps": args.steps + 2, "batch": batch, "precision": precision})
                if result is None or "error" in result:
                    failed += 1
                    print(f"| {device} | {args.sizes[0]} px | {precision} | {batch} | failed | | |", flush=True)
                    continue
                per_step = statistics.median(result["step_seconds"][2:] or result["step_seconds"])
                print(f"| {device} | {args.sizes[0]} px | {precision} | {batch} | {per_step:.4f} | "
                      f"{batch / per_step:.0f} | {result['peak_mib']:.0f} MiB |", flush=True)
    return int(failed > 0)


def main() -> int:
    """Run every variant in its own process and print the tables; 1 if any variant failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=["cpu"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--steps", type=int, default=4,
                        help="timed steps per size (plus 2 warm-up)")
    parser.add_argument("--converge-size", type=int, default=256, help="0 skips this table")
    parser.add_argument("--converge-steps", type=int, default=25)
    parser.add_argument("--target", type=float, default=0.1,
                        help="fixed loss as a fraction of the starting loss")
    parser.add_argument("--mode", choices=("speed", "scales", "tiles", "batch"), default="speed")
    parser.add_argument("--min-sizes", nargs="+", type=int, default=[128, 256],
                        help="--mode scales: the coarse-to-fine schedules' first sizes")
    parser.add_argument("--coarse-steps", nargs="+", type=int, default=None,
                        help="--mode scales: steps per coarse scale, one run each (default: --steps)")
    parser.add_argument("--loss-scale", type=float, default=1000.0,
                        help="--mode scales: the objective's factor (see above)")
    parser.add_argument("--tile", type=int, default=1024, help="--mode tiles: the tile side")
    parser.add_argument("--history", type=int, default=10, help="--mode tiles: L-BFGS history")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16],
                        help="--mode batch: images per batch, one run each")
    parser.add_argument("--precisions", nargs="+", default=["auto"], choices=PRECISIONS,
                        help="--mode batch: precisions, one run each")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(job(json.loads(args.job))))
        return 0
    if args.mode != "speed":
        return {"scales": _scales_table, "tiles": _tiles_table, "batch": _batch_table}[args.mode](args)
    if args.worker:
        impl, device, size, steps = args.worker
        print(json.dumps(worker(impl, device, int(size), int(steps))))
        return 0
    warmup, failed = 2, 0
    print("| device | size | implementation | s / evaluation (median) | best | evaluations / s "
          "| peak memory | evaluation alone |")
    print("|---|---|---|---|---|---|---|---|")
    for device in args.devices:
        for size in args.sizes:
            for impl in VARIANTS[device]:
                result = _measure(impl, device, size, warmup + args.steps)
                if result is None:
                    failed += 1
                    print(f"| {device} | {size} px | {impl} | failed (see stderr) | | | | |", flush=True)
                    continue
                times = [b[0] - a[0] for a, b in zip(result["stamps"], result["stamps"][1:])]
                per_eval = statistics.median(times[warmup - 1:])
                alone = "-" if result["evaluation"] is None else f"{result['evaluation']:.3f}"
                print(f"| {device} | {size} px | {impl} | {per_eval:.3f} | "
                      f"{min(times[warmup - 1:]):.3f} | {1 / per_eval:.2f} | "
                      f"{result['peak_mib']:.0f} MiB | {alone} |", flush=True)
    if not args.converge_size:
        return int(failed > 0)
    print()
    print(f"| device | size | implementation | start loss | steps to {args.target:g} x start | "
          f"seconds | loss after {args.converge_steps} steps (x start) | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for device in args.devices:
        for impl in VARIANTS[device]:
            result = _measure(impl, device, args.converge_size, args.converge_steps)
            if result is None:
                failed += 1
                print(f"| {device} | {args.converge_size} px | {impl} | failed (see stderr) | | | | |", flush=True)
                continue
            first = result["stamps"][0][1]
            reached = [(i + 1, t) for i, (t, loss) in enumerate(result["stamps"])
                       if loss <= args.target * first]
            steps, seconds = (reached[0][0], f"{reached[0][1] - result['start']:.2f}") if reached \
                else (f"> {args.converge_steps}", "-")
            last_time, last = result["stamps"][-1]
            print(f"| {device} | {args.converge_size} px | {impl} | {first:.4g} | {steps} | "
                  f"{seconds} | {last / first:.3f} | {last_time - result['start']:.2f} |", flush=True)
    return int(failed > 0)


if __name__ == "__main__":
    raise SystemExit(main())
