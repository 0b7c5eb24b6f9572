"""The peers' options: start from an image, histogram colors, normalized gradients, iterate averaging."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

import torchstyle
from torchstyle import StyleTransfer
from torchstyle.losses import NeuralStyleLoss
from torchstyle.scales import upsample
from torchstyle.transfer import IterateAverage, optimize

SMALL = {"style_layers": ["conv1_1", "conv2_1"], "content_layers": ["conv2_2"]}


@pytest.fixture(scope="module")
def small() -> StyleTransfer:
    torch.manual_seed(0)
    return StyleTransfer(weights=None, device="cpu", **SMALL)


def test_init_from_an_image_file_starts_there_resized(small, tmp_path, monkeypatch):
    starts = []
    original = torchstyle.optimize
    monkeypatch.setattr(torchstyle, "optimize",
                        lambda loss_fn, image, **kw: starts.append(image) or original(loss_fn, image, **kw))
    start = torch.rand(1, 3, 20, 30)
    path = tmp_path / "start.png"
    torchstyle.save_image(start, path)
    small(torch.rand(3, 24, 36), torch.rand(3, 24, 24), size=None, num_steps=1, init=str(path))
    expected = upsample(torchstyle.image_to_tensor(Image.open(path)), 24, 36)
    torch.testing.assert_close(starts[0], expected)


def test_histogram_color_transfer_gives_the_content_colors(small):
    torch.manual_seed(1)
    content, style = torch.rand(3, 24, 24) * 0.5, torch.rand(3, 24, 24)
    result = small(content, style, size=None, num_steps=3, color_transfer="histogram")
    for channel in range(3):
        torch.testing.assert_close(result[channel].flatten().sort().values,
                                   content[channel].flatten().sort().values)


def test_colour_options_that_clash_or_are_unknown_are_refused(small):
    image = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="choose one"):
        small(image, image, size=None, num_steps=1, color_transfer="histogram", original_colors=True)
    with pytest.raises(ValueError, match="color_transfer must be one of"):
        small(image, image, size=None, num_steps=1, color_transfer="pca")


class _Identity:
    """Features that are the image itself (layer 'a') and its square ('b')."""

    def __call__(self, image):
        return {"a": image, "b": image ** 2}


def test_normalized_gradients_have_the_term_weight_as_l1_norm_per_image():
    content, style = torch.rand(2, 3, 4, 4), torch.rand(1, 3, 4, 4)
    image = torch.rand(2, 3, 4, 4, requires_grad=True)
    options = dict(content_layers=["a"], style_layers=["b"], content_weight=3.0, style_weight=0.0)
    plain = NeuralStyleLoss(_Identity(), content, [style], **options)
    normalized = NeuralStyleLoss(_Identity(), content, [style], normalize_gradients=True, **options)
    terms = normalized(image)
    torch.testing.assert_close(terms["total"], plain(image)["total"])  # the same values
    terms["total"].sum().backward()
    torch.testing.assert_close(image.grad.abs().flatten(1).sum(1), torch.tensor([3.0, 3.0]))
    direction = torch.autograd.grad(plain(image)["total"].sum(), image)[0]
    cosine = torch.nn.functional.cosine_similarity(image.grad.flatten(1), direction.flatten(1))
    torch.testing.assert_close(cosine, torch.ones(2))  # each image: the same direction, rescaled


def test_normalized_gradients_run_end_to_end(small):
    result = small(torch.rand(3, 16, 16), torch.rand(3, 16, 16), size=None, num_steps=2,
                   normalize_gradients=True, content_weight=5, style_weight=100)
    assert result.shape == (3, 16, 16)


def test_iterate_averaging_returns_the_bias_corrected_average_of_the_iterates():
    def loss(image):
        return {"total": ((image - 0.8) ** 2).sum() + (image ** 4).sum()}

    start = torch.rand(1, 3, 4, 4)
    iterates = [start]
    optimize(loss, start, num_steps=6, callback=lambda step, losses, image: iterates.append(image))
    value, weight = torch.zeros_like(start), 1.0
    for image in iterates:
        weight *= 0.7
        value = 0.7 * value + 0.3 * image
    averaged = optimize(loss, start, num_steps=6, avg_decay=0.7)
    torch.testing.assert_close(averaged, value / (1 - weight))
    with pytest.raises(ValueError, match=r"avg_decay must be in \[0, 1\)"):
        IterateAverage([start], 1.0)
