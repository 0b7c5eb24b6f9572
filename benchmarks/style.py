"""Speed of torchstyle next to a plain implementation of the same algorithm (run on demand, not CI).

Prints two markdown tables:

1. seconds per L-BFGS step (one function evaluation: forward + backward through VGG-19 cut after
   conv5_1) and peak memory, at each ``--sizes`` on each ``--devices``; for torchstyle also one
   evaluation alone, so that the optimizer's own share of a step (on CUDA: its syncs) shows;
2. wall time and steps to bring the total loss to a fixed fraction of its start.

The plain reference follows the PyTorch neural-style tutorial: torchvision's VGG-19 features
with loss modules inserted after the chosen layers, NCHW float32, no hooks, no graphs. Both sides
use the same objective (same layers, weights, loss formulas, clamped pixels) and the same random
VGG weights (pretrained weights change the values, not the work), so the loss curves agree.
Each measurement runs in a fresh process so that peak memory is its own.

    python benchmarks/style.py                       # CPU, 256 and 512 px
    python benchmarks/style.py --devices cuda --sizes 512 1024 --steps 30
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

from torchstyle.losses import NeuralStyleLoss  # noqa: E402
from torchstyle.transfer import (GRAPH_WARMUP, CUDAGraphed, Evaluation, optimize,  # noqa: E402
                                 precision_flags)
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
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
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
