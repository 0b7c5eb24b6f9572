"""torchstyle.losses: each loss against its formula written out by hand on tiny tensors."""
from __future__ import annotations

import pytest
import torch

from torchstyle.losses import (NeuralStyleLoss, content_loss, gram_matrix, resolve_layer_weights,
                               style_layer_loss, style_loss, tv_loss)


def test_gram_matrix_is_feature_products_over_layer_size():
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]],
                              [[0.0, 1.0], [-1.0, 2.0]]]])  # B=1, C=2, H=2, W=2
    # rows: channel 0 = (1, 2, 3, 4), channel 1 = (0, 1, -1, 2); C*H*W = 8
    expected = torch.tensor([[[30.0, 7.0], [7.0, 6.0]]]) / 8
    torch.testing.assert_close(gram_matrix(features), expected)


def test_gram_matrix_of_channels_last_features_is_the_same():
    features = torch.randn(2, 5, 3, 4)
    torch.testing.assert_close(gram_matrix(features.contiguous(memory_format=torch.channels_last)),
                               gram_matrix(features))


def test_gram_matrix_stays_float32_under_autocast():
    features = torch.randn(1, 4, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gram_matrix(features).dtype == torch.float32


def test_content_loss_is_the_mean_squared_difference():
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.tensor([[[[1.0, 0.0], [3.0, 1.0]]]])
    assert content_loss(features, target).item() == pytest.approx((0 + 4 + 0 + 9) / 4)


def test_style_loss_sums_weighted_layer_losses():
    a, b = torch.tensor([[[1.0, 2.0], [2.0, 5.0]]]), torch.tensor([[[0.0, 2.0], [2.0, 3.0]]])
    assert style_layer_loss(a, b).item() == pytest.approx((1 + 0 + 0 + 4) / 4)
    grams = {"conv1_1": a, "conv2_1": b}
    targets = {"conv1_1": b, "conv2_1": torch.zeros_like(b)}
    total = style_loss(grams, targets, {"conv1_1": 0.25, "conv2_1": 2.0})
    assert total.item() == pytest.approx(0.25 * 5 / 4 + 2.0 * (0 + 4 + 4 + 9) / 4)


def test_tv_loss_on_a_tiny_image():
    image = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    vertical = ((2 - 0) ** 2 + (4 - 1) ** 2) / 2
    horizontal = ((1 - 0) ** 2 + (4 - 2) ** 2) / 2
    assert tv_loss(image).item() == pytest.approx(vertical + horizontal)
    assert tv_loss(torch.full((1, 3, 5, 5), 0.3)).item() == 0.0


def test_layer_weight_presets():
    layers = ["conv3_1", "conv1_1", "conv2_1"]
    assert resolve_layer_weights(layers, "equal") == pytest.approx(
        {"conv3_1": 1 / 3, "conv1_1": 1 / 3, "conv2_1": 1 / 3})
    # the lecture: more weight to deeper layers, 1 : 2 : 3 from shallow to deep
    assert resolve_layer_weights(layers, "deeper") == pytest.approx(
        {"conv1_1": 1 / 6, "conv2_1": 2 / 6, "conv3_1": 3 / 6})
    assert resolve_layer_weights(layers, [0.5, 1, 2]) == {"conv3_1": 0.5, "conv1_1": 1.0,
                                                          "conv2_1": 2.0}
    with pytest.raises(ValueError, match="2 layer weights given for 3 style layers"):
        resolve_layer_weights(layers, [1, 2])
    with pytest.raises(ValueError, match="'equal', 'deeper'"):
        resolve_layer_weights(layers, "shallower")


class _Fake:
    """A feature 'extractor' whose features are the image itself and its square."""

    def __call__(self, image):
        return {"a": image, "b": image ** 2}


def test_targets_are_fixed_without_gradient_and_blended():
    content = torch.rand(1, 3, 4, 4, requires_grad=True)
    styles = [torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)]
    loss = NeuralStyleLoss(_Fake(), content, styles, content_layers=["a"], style_layers=["a", "b"],
                           style_blend_weights=[3, 1])
    assert not loss.content_targets["a"].requires_grad
    expected = 0.75 * gram_matrix(styles[0] ** 2) + 0.25 * gram_matrix(styles[1] ** 2)
    torch.testing.assert_close(loss.style_targets["b"], expected)
    with pytest.raises(ValueError, match="2 style blend weights given for 1 style images"):
        NeuralStyleLoss(_Fake(), content, styles[:1], content_layers=["a"], style_layers=["a"],
                        style_blend_weights=[1, 1])


def test_total_is_the_weighted_sum_of_the_terms():
    content, style = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    image = torch.rand(1, 3, 4, 4)
    loss = NeuralStyleLoss(_Fake(), content, [style], content_layers=["a"], style_layers=["a", "b"],
                           content_weight=2.0, style_weight=10.0, tv_weight=0.5)
    terms = loss(image)
    grams = {n: gram_matrix(f) for n, f in _Fake()(image).items()}
    targets = {n: gram_matrix(f) for n, f in _Fake()(style).items()}
    assert terms["content"].item() == pytest.approx(2.0 * ((image - content) ** 2).mean().item())
    assert terms["style"].item() == pytest.approx(
        10.0 * 0.5 * sum(((grams[n] - targets[n]) ** 2).mean().item() for n in "ab"))
    assert terms["tv"].item() == pytest.approx(0.5 * tv_loss(image).item())
    assert terms["total"].item() == pytest.approx(
        terms["content"].item() + terms["style"].item() + terms["tv"].item())
    assert loss(content)["content"].item() == 0.0


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_matrix_gradient_matches_the_plain_formula(layout):
    features = torch.randn(2, 6, 5, 4).contiguous(memory_format=layout).requires_grad_()
    weights = torch.randn(2, 6, 6)
    (gram_matrix(features) * weights).sum().backward()
    plain = features.detach().clone().requires_grad_()
    flat = plain.reshape(2, 6, 20)
    ((flat @ flat.transpose(1, 2) / 120) * weights).sum().backward()
    torch.testing.assert_close(features.grad, plain.grad)
