"""torchstyle.transfer and StyleTransfer: the image is optimized, VGG is not, and the loss falls."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

import torchstyle.transfer as transfer_module
from torchstyle import MemoryLimitError, StyleTransfer, stylize
from torchstyle.images import rgb_to_yiq
from torchstyle.losses import NeuralStyleLoss
from torchstyle.transfer import (GRAPH_WARMUP, CUDAGraphed, Evaluation, evaluation_bytes, initial_image,
                                 optimize, precision_flags, resolve_precision, select_device)

SMALL = {"style_layers": ["conv1_1", "conv2_1", "conv3_1"], "content_layers": ["conv2_2"]}


@pytest.fixture(scope="module")
def transfer() -> StyleTransfer:
    torch.manual_seed(0)
    return StyleTransfer(weights=None, device="cpu")


@pytest.fixture(scope="module")
def small() -> StyleTransfer:
    torch.manual_seed(0)
    return StyleTransfer(weights=None, device="cpu", **SMALL)


def _pictures(size: int = 64):
    """A smooth colorful content image and a striped style image, both in [0.25, 0.75]."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    content = torch.stack([x, y, 1 - x]) * 0.5 + 0.25
    stripes = (torch.sin(x * 40) > 0).float()
    style = torch.stack([stripes, 1 - stripes, 0.5 * torch.ones_like(x)]) * 0.5 + 0.25
    return content, style


def test_total_loss_falls_tenfold_within_50_lbfgs_steps_at_64px(transfer):
    content, style = _pictures(64)
    history = []
    result = transfer(content, style, size=64, num_steps=50,
                      callback=lambda step, losses, image: history.append(losses["total"]))
    assert len(history) == 50 and result.shape == (3, 64, 64)
    assert history[-1] <= history[0] / 10
    assert result.min() >= 0.0 and result.max() <= 1.0


def test_bf16_autocast_on_cpu_lowers_the_loss_like_float32():
    content, style = _pictures(48)
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)  # the same random VGG weights for both
        transfer = StyleTransfer(weights=None, device="cpu", precision=precision, **SMALL)
        history = []
        result = transfer(content, style, size=48, num_steps=20,
                          callback=lambda step, terms, image: history.append(terms["total"]))
        assert result.dtype == torch.float32 and 0.0 <= result.min() and result.max() <= 1.0
        losses[precision] = history
    assert losses["bf16"][0] == pytest.approx(losses["fp32"][0], rel=0.05)  # the same objective,
    assert losses["bf16"][0] != losses["fp32"][0]  # computed in bf16
    assert losses["bf16"][-1] <= losses["bf16"][0] / 5  # 20 steps: float32 falls about 8x here
    assert losses["bf16"][-1] <= 1.5 * losses["fp32"][-1]


def test_only_the_image_is_optimized_and_vgg_gets_no_gradient(small, monkeypatch):
    made, original = [], transfer_module.make_optimizer

    def spy(name, image, *args, **kwargs):
        made.append((original(name, image, *args, **kwargs), image))
        return made[-1][0]

    monkeypatch.setattr(transfer_module, "make_optimizer", spy)
    content, style = _pictures(32)
    small(content, style, size=32, num_steps=3)
    optimizer, image = made[0]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(params) == 1 and params[0] is image and image.shape == (1, 3, 32, 32)
    assert all(p.grad is None and not p.requires_grad for p in small.vgg.parameters())


def test_style_targets_need_no_gradient(small):
    content, style = _pictures(32)
    loss = NeuralStyleLoss(small.vgg, content[None].requires_grad_(), [style[None]],
                           content_layers=SMALL["content_layers"],
                           style_layers=SMALL["style_layers"])
    targets = [*loss.style_targets.values(), *loss.content_targets.values()]
    assert all(not t.requires_grad and t.grad_fn is None for t in targets)


def test_seeded_runs_on_cpu_are_identical(small):
    content, style = _pictures(32)
    first = small(content, style, size=32, num_steps=5, init="mix", seed=7)
    again = small(content, style, size=32, num_steps=5, init="mix", seed=7)
    other = small(content, style, size=32, num_steps=5, init="mix", seed=8)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_adam_also_lowers_the_loss(small):
    content, style = _pictures(32)
    history = []
    small(content, style, size=32, num_steps=15, optimizer="adam", init="noise", seed=0,
          callback=lambda step, losses, image: history.append(losses["total"]))
    assert history[-1] < history[0]


def test_initial_images():
    content, style = torch.full((1, 3, 8, 8), 0.5), torch.rand(1, 3, 16, 12)
    assert torch.equal(initial_image("content", content, style), content)
    assert initial_image("style", content, style).shape == content.shape
    noise = initial_image("noise", content, style, seed=3)
    mix = initial_image("mix", content, style, noise_ratio=0.6, seed=3)
    torch.testing.assert_close(mix, 0.6 * noise + 0.4 * content)
    with pytest.raises(ValueError, match="init must be one of"):
        initial_image("zeros", content, style)


def test_original_colors_keep_the_content_chroma(small):
    content, style = _pictures(48)
    result = small(content, style, size=48, num_steps=10, original_colors=True)
    inside = ((result > 0.01) & (result < 0.99)).all(dim=0)
    assert inside.float().mean() > 0.9
    chroma, wanted = rgb_to_yiq(result[None])[0, 1:], rgb_to_yiq(content[None])[0, 1:]
    torch.testing.assert_close(chroma[:, inside], wanted[:, inside], rtol=0, atol=1e-4)
    luma_change = (rgb_to_yiq(result[None])[0, 0] - rgb_to_yiq(content[None])[0, 0]).abs().mean()
    assert luma_change > 1e-3  # the style did change the luminance


def test_several_styles_blend_and_pil_images_round_trip(small):
    content, style = _pictures(40)
    pil_content = Image.fromarray((content.permute(1, 2, 0) * 255).byte().numpy())
    flipped = Image.fromarray((style.permute(2, 1, 0) * 255).byte().numpy())
    history = []
    result = small(pil_content, [style, flipped], size=40, num_steps=10, style_blend_weights=[2, 1],
                   style_scale=0.8, callback=lambda step, losses, image: history.append(image))
    assert isinstance(result, Image.Image) and result.size == (40, 40)
    assert history[-1].shape == (1, 3, 40, 40)
    with pytest.raises(ValueError, match="2 style blend weights given for 1 style images"):
        small(content, style, size=40, num_steps=1, style_blend_weights=[1, 1])


def test_extreme_aspect_ratio_is_stretched_to_what_vgg_needs(transfer):
    result = transfer(torch.rand(3, 2, 200), torch.rand(3, 32, 32), size=64, num_steps=1)
    assert result.shape == (3, 16, 64)


def test_image_too_large_for_memory_suggests_a_size(small, monkeypatch):
    monkeypatch.setattr(transfer_module, "available_memory", lambda device: 64 * 2**20)
    content, style = _pictures(32)
    with pytest.raises(MemoryLimitError, match=r"use a smaller --size \(about \d+ px fits\)"):
        small(content, style, size=4096, num_steps=1)
    with pytest.raises(MemoryLimitError, match=r"use a smaller --style-scale or --size"):
        small(content, style, size=16, style_scale=400, num_steps=1)


def test_memory_estimate_counts_the_lbfgs_history(small):
    image = 3 * 40 * 30 * 4
    with_history = evaluation_bytes(small.vgg, 40, 30, "lbfgs", history_size=100)
    without = evaluation_bytes(small.vgg, 40, 30, "lbfgs", history_size=0)
    assert with_history - without == 200 * image
    assert evaluation_bytes(small.vgg, 40, 30, "adam") < with_history


def test_stylize_splits_network_and_picture_options():
    content, style = _pictures(32)
    torch.manual_seed(0)
    result = stylize(content[None], style, weights=None, device="cpu", size=None, num_steps=2,
                     **SMALL)
    assert result.shape == (1, 3, 32, 32)


def test_device_and_precision_choices():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(None).type in ("cuda", "mps", "cpu")
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("tf32", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "tf32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp8", torch.device("cpu"))


def test_precision_flags_turn_tf32_on_and_restore_them():
    matmul = torch.backends.cuda.matmul
    if not hasattr(matmul, "fp32_precision"):
        pytest.skip("torch < 2.9 has no fp32_precision flags")
    before = (matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
              torch.backends.cudnn.benchmark)
    with precision_flags("tf32"):
        assert matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "tf32"
        assert torch.backends.cudnn.benchmark == before[2]  # autotuning's workspaces cost GiBs
    assert (matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
            torch.backends.cudnn.benchmark) == before


def test_tf32_is_on_for_the_evaluation_and_off_while_lbfgs_steps(monkeypatch):
    matmul = torch.backends.cuda.matmul
    tf32_now = (lambda: matmul.fp32_precision == "tf32") if hasattr(matmul, "fp32_precision") else (
        lambda: matmul.allow_tf32)
    seen = {"evaluation": set(), "optimizer": set()}
    remember = transfer_module.SyncFreeLBFGS._remember

    def spy(*args):
        seen["optimizer"].add(tf32_now())
        return remember(*args)

    monkeypatch.setattr(transfer_module.SyncFreeLBFGS, "_remember", staticmethod(spy))

    def loss_fn(image):
        seen["evaluation"].add(tf32_now())
        return {"total": ((image - 0.3) ** 2).sum()}

    optimize(loss_fn, torch.rand(1, 3, 4, 4), num_steps=4, precision="tf32", cuda_graphs=False)
    assert seen == {"evaluation": {True}, "optimizer": {False}} and not tf32_now()


def test_cuda_graphs_need_cuda():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        optimize(lambda image: {"total": image.sum()}, torch.rand(1, 3, 4, 4), num_steps=1,
                 cuda_graphs=True)


def _small_cuda_loss():
    torch.manual_seed(0)
    gpu = StyleTransfer(weights=None, device="cuda", precision="fp32", **SMALL)
    content, style = (p[None].cuda() for p in _pictures(64))
    return NeuralStyleLoss(gpu.vgg, content, [style], content_layers=SMALL["content_layers"],
                           style_layers=SMALL["style_layers"]), content


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_graphed_evaluation_matches_eager_on_cuda():
    loss, content = _small_cuda_loss()
    image = torch.rand_like(content).requires_grad_()
    evaluate = Evaluation(loss, image)
    eager = evaluate()["total"].clone()
    eager_grad = image.grad.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        evaluate()
        graphed = CUDAGraphed(evaluate, stream)
        for _ in range(2):
            torch.testing.assert_close(graphed()["total"], eager, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(image.grad, eager_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_graphed_steps_take_the_eager_steps_on_cuda(optimizer):
    """After GRAPH_WARMUP eager steps, one captured step (evaluation + update) is replayed."""
    loss, content = _small_cuda_loss()
    runs = {}
    for graphs in (False, True):
        seen = []
        image = optimize(loss, content, num_steps=GRAPH_WARMUP + 12, optimizer=optimizer, cuda_graphs=graphs,
                         callback=lambda step, losses, image: seen.append((step, losses["total"])))
        runs[graphs] = image, seen
    (eager_image, eager), (graphed_image, graphed) = runs[False], runs[True]
    assert [step for step, _ in graphed] == list(range(1, GRAPH_WARMUP + 13))
    torch.testing.assert_close([total for _, total in graphed], [total for _, total in eager], rtol=1e-3, atol=0)
    assert graphed[-1][1] < graphed[GRAPH_WARMUP][1]  # the replays do move the image
    if optimizer == "lbfgs":  # Adam's sign-like steps turn rounding in near-zero gradients into lr-sized moves
        torch.testing.assert_close(graphed_image, eager_image, rtol=0, atol=1e-3)
