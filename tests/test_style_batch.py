"""Batches: same-size images optimized together take the steps each takes alone (own L-BFGS each)."""
from __future__ import annotations

import pytest
import torch

from torchstyle import StyleTransfer
from torchstyle.transfer import optimize

SMALL = {"style_layers": ["conv1_1", "conv2_1"], "content_layers": ["conv2_2"]}


@pytest.fixture(scope="module")
def small() -> StyleTransfer:
    torch.manual_seed(0)
    return StyleTransfer(weights=None, device="cpu", **SMALL)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_batch_takes_the_steps_of_separate_runs(small, optimizer):
    """Three steps: the batched convolutions round differently (1e-6), and L-BFGS steps without a
    line search can amplify that (here to 2e-3 of a pixel at step 4, the losses still equal)."""
    torch.manual_seed(3)
    contents, style = torch.rand(3, 3, 24, 32), torch.rand(3, 28, 28)
    seen = []
    together = small(contents, style, size=None, num_steps=3, optimizer=optimizer,
                     callback=lambda step, losses, image: seen.append((losses, image.shape)))
    assert together.shape == (3, 3, 24, 32)
    assert all(len(losses["total"]) == 3 and shape == (3, 3, 24, 32) for losses, shape in seen)
    for index, content in enumerate(contents):
        alone = []
        result = small(content, style, size=None, num_steps=3, optimizer=optimizer,
                       callback=lambda step, losses, image: alone.append(losses["total"]))
        torch.testing.assert_close(together[index], result, rtol=0, atol=1e-4)
        torch.testing.assert_close([losses["total"][index] for losses, _ in seen], alone, rtol=1e-4, atol=0)


def test_each_image_of_a_batch_has_its_own_lbfgs_state(monkeypatch):
    import torchstyle.transfer as transfer_module
    made = []
    original = transfer_module.make_optimizer

    def spy(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(transfer_module, "make_optimizer", spy)
    targets = torch.tensor([0.2, 0.7]).view(2, 1, 1, 1)
    result = optimize(lambda image: {"total": ((image - targets) ** 2).flatten(1).sum(1)},
                      torch.full((2, 3, 4, 4), 0.5), num_steps=5)
    assert len(made) == 2 and all(len(o.param_groups[0]["params"]) == 1 for o in made)
    torch.testing.assert_close(result, targets.expand(2, 3, 4, 4), rtol=0, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("avg_decay", [0.0, 0.9])
def test_a_graphed_batch_takes_the_eager_steps_on_cuda(avg_decay):
    """Evaluation and every image's L-BFGS update (and the average) in one captured graph."""
    from torchstyle.losses import NeuralStyleLoss
    from torchstyle.transfer import GRAPH_WARMUP
    torch.manual_seed(0)
    gpu = StyleTransfer(weights=None, device="cuda", precision="fp32", **SMALL)
    contents, style = torch.rand(4, 3, 64, 64, device="cuda"), torch.rand(1, 3, 64, 64, device="cuda")
    loss = NeuralStyleLoss(gpu.vgg, contents, [style], **SMALL)
    runs = {}
    for graphs in (False, True):
        seen = []
        image = optimize(loss, contents, num_steps=GRAPH_WARMUP + 8, cuda_graphs=graphs, avg_decay=avg_decay,
                         callback=lambda step, losses, image: seen.append(losses["total"]))
        runs[graphs] = image, seen
    torch.testing.assert_close(runs[True][1], runs[False][1], rtol=1e-3, atol=0)
    torch.testing.assert_close(runs[True][0], runs[False][0], rtol=0, atol=1e-3)
