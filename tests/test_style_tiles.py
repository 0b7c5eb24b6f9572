"""torchstyle.tiles: the tiled loss is the untiled objective, value and gradient, on small images."""
from __future__ import annotations

import pytest
import torch

import torchstyle.transfer as transfer_module
from torchstyle import StyleTransfer
from torchstyle.losses import NeuralStyleLoss
from torchstyle.tiles import TiledStyleLoss, exact_halo, largest_tile, receptive_radius, tile_grid
from torchstyle.vgg import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, VGGFeatures

# cut after conv2_1: a receptive radius of 4 px (conv1_1, conv1_2 at stride 1, conv2_1 at 2)
OPTIONS = {"content_layers": ["conv1_2"], "style_layers": ["conv1_1", "conv2_1"],
           "style_weight": 1e3, "tv_weight": 0.3}


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    torch.manual_seed(0)
    return VGGFeatures(["conv1_1", "conv2_1", "conv1_2"], weights=None)


def _loss_and_gradient(loss_fn, image: torch.Tensor):
    pixels = image.clone().requires_grad_()
    terms = loss_fn(pixels.clamp(0, 1))
    terms["total"].sum().backward()
    return {k: v.detach() for k, v in terms.items()}, pixels.grad


def test_the_halo_is_the_receptive_field_on_the_pooling_grid(vgg):
    assert receptive_radius(vgg) == 4 and exact_halo(vgg) == 4
    full = VGGFeatures(DEFAULT_STYLE_LAYERS + DEFAULT_CONTENT_LAYERS, weights=None)
    # 2 convs at stride 1, 2 at 2, 4 at 4, 4 at 8, conv5_1 at 16: 2 + 4 + 16 + 32 + 16
    assert receptive_radius(full) == 70 and exact_halo(full) == 80


@pytest.mark.parametrize("offset", [(0, 0), (2, 6), (6, 4)])
def test_tile_cores_cover_every_pixel_once_on_the_grid(offset):
    height, width = 37, 45
    seen = torch.zeros(height, width, dtype=torch.int64)
    for tile in tile_grid(height, width, core=8, halo=4, offset=offset):
        top, bottom, left, right = tile.core
        seen[top:bottom, left:right] += 1
        assert top % 2 == 0 and left % 2 == 0 and tile.top % 2 == 0 and tile.left % 2 == 0
        assert tile.top == max(0, top - 4) and tile.bottom == min(height, bottom + 4)
        assert tile.right - tile.left <= 16
    assert torch.equal(seen, torch.ones_like(seen))


def test_tiled_value_and_gradient_equal_the_untiled_ones(vgg):
    torch.manual_seed(1)
    content, style, image = torch.rand(2, 3, 37, 45), torch.rand(1, 3, 30, 26), torch.rand(2, 3, 37, 45)
    plain = NeuralStyleLoss(vgg, content, [style], **OPTIONS)
    tiled = TiledStyleLoss(vgg, content, [style], tile=16, seed=0, **OPTIONS)
    assert len(tiled.tiles(37, 45)) >= 25  # 8 px cores: the image is really cut up
    for name, target in plain.style_targets.items():
        torch.testing.assert_close(tiled.style_targets[name], target, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(tiled.content_targets["conv1_2"], plain.content_targets["conv1_2"])
    want, want_grad = _loss_and_gradient(plain, image)
    offsets = set()
    for _ in range(3):  # the grid moves every call; the objective does not
        offsets.add(tiled.tiles(37, 45, jitter=True)[0].core)
        got, grad = _loss_and_gradient(tiled, image)
        for name in ("content", "style", "tv", "total"):
            assert got[name].shape == (2,)
            torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(grad, want_grad, rtol=1e-4, atol=1e-8)
    assert len(offsets) > 1


def test_a_halo_short_of_the_receptive_field_is_not_exact(vgg):
    torch.manual_seed(2)
    content, style, image = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    options = {**OPTIONS, "content_weight": 0.0, "tv_weight": 0.0, "style_weight": 1e9}  # style alone
    plain = NeuralStyleLoss(vgg, content, [style], **options)
    short = TiledStyleLoss(vgg, content, [style], tile=12, halo=2, **options)
    error = (short.style_targets["conv2_1"] - plain.style_targets["conv2_1"]).abs().max()
    assert error > 0.01 * plain.style_targets["conv2_1"].abs().max()  # conv2_1 sees 4 px around
    (_, want), (_, got) = _loss_and_gradient(plain, image), _loss_and_gradient(short, image)
    assert (got - want).abs().max() > 0.01 * want.abs().max()


def test_bad_tiles_are_refused(vgg):
    content = torch.rand(1, 3, 20, 20)
    with pytest.raises(ValueError, match="use a tile of at least 10 px"):
        TiledStyleLoss(vgg, content, [content], tile=9, **OPTIONS)
    with pytest.raises(ValueError, match="multiple of 2 px"):
        TiledStyleLoss(vgg, content, [content], tile=16, halo=3, **OPTIONS)
    with pytest.raises(ValueError, match="cannot be combined with tiles"):
        TiledStyleLoss(vgg, content, [content], tile=16, normalize_gradients=True, **OPTIONS)


def test_largest_tile_is_the_biggest_that_fits(vgg):
    assert largest_tile(vgg, 100, 60, lambda side: side <= 50) == 50
    assert largest_tile(vgg, 100, 60, lambda side: True) == 100
    assert largest_tile(vgg, 100, 60, lambda side: side < 10) is None


def test_tiled_optimization_takes_the_untiled_steps(vgg):
    torch.manual_seed(0)
    small = StyleTransfer(weights=None, device="cpu", style_layers=OPTIONS["style_layers"],
                          content_layers=OPTIONS["content_layers"])
    content, style = torch.rand(3, 40, 36), torch.rand(3, 32, 32)
    whole = small(content, style, size=None, num_steps=4, tile=0, style_weight=1e3)
    tiled = small(content, style, size=None, num_steps=4, tile=18, style_weight=1e3)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-4)


def test_tiles_are_chosen_when_the_image_will_not_fit(vgg, monkeypatch):
    torch.manual_seed(0)
    small = StyleTransfer(weights=None, device="cpu", style_layers=OPTIONS["style_layers"],
                          content_layers=OPTIONS["content_layers"])
    made = []
    original = TiledStyleLoss.__init__

    def spy(self, *args, **kwargs):
        made.append(kwargs["tile"])
        original(self, *args, **kwargs)

    monkeypatch.setattr(TiledStyleLoss, "__init__", spy)
    whole = transfer_module.evaluation_bytes(small.vgg, 64, 64, "lbfgs", 5)
    monkeypatch.setattr(transfer_module, "available_memory", lambda device: 0.6 * whole)
    monkeypatch.setattr("torchstyle.available_memory", lambda device: 0.6 * whole)
    result = small(torch.rand(3, 64, 64), torch.rand(3, 32, 32), size=None, num_steps=1,
                   history_size=5)
    assert result.shape == (3, 64, 64) and len(made) == 1 and 10 <= made[0] < 64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tiled_gradient_equals_the_untiled_one_on_cuda():
    torch.manual_seed(0)
    vgg = VGGFeatures(["conv1_1", "conv2_1", "conv1_2"], weights=None).cuda()
    content, style, image = (torch.rand(2, 3, 70, 50, device="cuda") for _ in range(3))
    _, want = _loss_and_gradient(NeuralStyleLoss(vgg, content, [style], **OPTIONS), image)
    _, got = _loss_and_gradient(TiledStyleLoss(vgg, content, [style], tile=24, **OPTIONS), image)
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-7)  # cuDNN picks per-shape kernels


def test_tiles_that_are_mostly_halo_are_worth_a_warning(vgg, caplog):
    content = torch.rand(1, 3, 20, 20)
    TiledStyleLoss(vgg, content, [content], tile=40, **OPTIONS)
    assert "larger tiles are faster" not in caplog.text
    TiledStyleLoss(vgg, content, [content], tile=12, **OPTIONS)  # 4 px cores in 12 px tiles: 9x
    assert "evaluate about 9.0x the image's pixels" in caplog.text
