"""torchstyle.scales and coarse-to-fine StyleTransfer: sizes, steps, and each scale from the last."""
from __future__ import annotations

import pytest
import torch

from torchstyle import StyleTransfer
from torchstyle.scales import scale_sizes, scale_steps, upsample

SMALL = {"style_layers": ["conv1_1", "conv2_1"], "content_layers": ["conv2_2"]}


@pytest.fixture(scope="module")
def small() -> StyleTransfer:
    torch.manual_seed(0)
    return StyleTransfer(weights=None, device="cpu", **SMALL)


def test_sizes_grow_by_about_the_square_root_of_two_up_to_the_size():
    assert scale_sizes(512, 128) == [128, 181, 256, 362, 512]
    assert scale_sizes(512, 256) == [256, 362, 512]
    sizes = scale_sizes(1000, 100)
    assert sizes[0] == 100 and sizes[-1] == 1000
    ratios = [b / a for a, b in zip(sizes, sizes[1:])]
    assert all(1.3 < r <= 2 ** 0.5 + 0.01 for r in ratios)


def test_min_size_at_or_above_the_size_is_one_scale():
    assert scale_sizes(512, 512) == [512] == scale_sizes(512, 800) == scale_sizes(512, None)


def test_steps_per_scale():
    assert scale_steps(3, 100) == [100, 100, 100]
    assert scale_steps(3, 100, 20) == [20, 20, 100]
    assert scale_steps(1, 7, 20) == [7]


def test_upsample_keeps_the_range():
    image = torch.rand(2, 3, 8, 10)
    bigger = upsample(image, 16, 20)
    assert bigger.shape == (2, 3, 16, 20) and bigger.min() >= 0 and bigger.max() <= 1
    assert upsample(image, 8, 10) is image


def test_each_scale_starts_from_the_last_result_upsampled(small, monkeypatch):
    import torchstyle
    starts, results = [], []
    original = torchstyle.optimize

    def spy(loss_fn, image, **kwargs):
        starts.append(image.clone())
        results.append(original(loss_fn, image, **kwargs))
        return results[-1]

    monkeypatch.setattr(torchstyle, "optimize", spy)
    content, style = torch.rand(3, 48, 64), torch.rand(3, 32, 32)
    seen = []
    result = small(content, style, size=64, min_size=32, num_steps=3, coarse_steps=2,
                   callback=lambda step, losses, image: seen.append((step, tuple(image.shape[-2:]))))
    assert [tuple(s.shape[-2:]) for s in starts] == [(24, 32), (34, 45), (48, 64)]
    for previous, start in zip(results, starts[1:]):
        torch.testing.assert_close(start, upsample(previous, *start.shape[-2:]))
    assert seen == [(1, (24, 32)), (2, (24, 32)), (3, (34, 45)), (4, (34, 45)),
                    (5, (48, 64)), (6, (48, 64)), (7, (48, 64))]
    assert result.shape == (3, 48, 64)


def _pictures(size: int):
    """A smooth colorful content picture (large-scale structure) and a striped style picture."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    stripes = (torch.sin(x * 40) > 0).float()
    return (torch.stack([x, y, 1 - x]) * 0.5 + 0.25,
            torch.stack([stripes, 1 - stripes, 0.5 * torch.ones_like(x)]) * 0.5 + 0.25)


def test_coarse_to_fine_ends_lower_than_one_scale_with_the_same_last_steps(small):
    content, style = _pictures(64)
    finals = {}
    for min_size in (None, 32):
        losses = []
        small(content, style, size=64, min_size=min_size, num_steps=8, coarse_steps=4,
              callback=lambda step, terms, image: losses.append(terms["total"]))
        assert len(losses) == (8 if min_size is None else 16)
        finals[min_size] = losses[-1]
    assert finals[32] < 0.8 * finals[None]


def test_min_size_below_what_vgg_needs_is_refused(small):
    with pytest.raises(ValueError, match="min_size must be at least 2 px"):
        small(torch.rand(3, 32, 32), torch.rand(3, 32, 32), size=32, min_size=1, num_steps=1)
