"""torchstyle.vgg: layer names, hooks checked against torchvision's vgg19().features, weights."""
from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from torchstyle.vgg import (DEFAULT_WEIGHTS, IMAGENET_MEAN, IMAGENET_STD, LAYER_NAMES, VGGFeatures,
                            WeightsError, layer_index)


@pytest.fixture(scope="module")
def torchvision_vgg19() -> nn.Sequential:
    torch.manual_seed(0)
    return torchvision.models.vgg19(weights=None).features.eval()


def _copy_of(reference: nn.Sequential, layers: list[str], **kwargs) -> VGGFeatures:
    """Our extractor holding the same weights as torchvision's features."""
    ours = VGGFeatures(layers, weights=None, **kwargs)
    wanted = ours.features.state_dict().keys()
    ours.features.load_state_dict({k: v for k, v in reference.state_dict().items() if k in wanted})
    return ours


def test_layer_names_follow_torchvision_modules(torchvision_vgg19):
    assert len(LAYER_NAMES) == len(torchvision_vgg19) == 37
    kinds = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}
    for name, module in zip(LAYER_NAMES, torchvision_vgg19):
        assert isinstance(module, kinds[name[:4]]), name
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert layer_index("conv4_2") == 21 and layer_index("conv5_1") == 28


def test_unknown_layer_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown VGG-19 layer 'conv6_1'.*conv1_1.*relu5_4"):
        VGGFeatures(["conv6_1"], weights=None)
    with pytest.raises(ValueError, match="'pool1'"):
        layer_index("pool1")


def test_hooks_match_slicing_torchvision_features(torchvision_vgg19):
    layers = ["conv1_1", "relu1_2", "conv3_1", "relu4_2", "conv5_1"]
    ours = _copy_of(torchvision_vgg19, layers)
    image = torch.rand(2, 3, 48, 40)
    normalized = (image - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        recorded = ours(image)
        assert set(recorded) == set(layers)
        for name in layers:
            expected = torchvision_vgg19[:layer_index(name) + 1](normalized.clone())
            torch.testing.assert_close(recorded[name], expected, rtol=1e-4, atol=1e-4)


def test_features_are_cut_after_the_deepest_layer_and_frozen():
    vgg = VGGFeatures(["relu2_1", "conv1_1"], weights=None)
    assert len(vgg.features) == layer_index("relu2_1") + 1
    assert not vgg.training
    assert all(not p.requires_grad for p in vgg.parameters())
    assert vgg.min_side == 2  # one pooling before relu2_1


def test_relu_after_a_recorded_conv_is_not_in_place():
    vgg = VGGFeatures(["conv1_1", "relu1_2"], weights=None)
    assert vgg.features[1].inplace is False   # conv1_1 is recorded: keep it pre-ReLU
    assert vgg.features[3].inplace is True
    out = vgg(torch.rand(1, 3, 16, 16))
    assert (out["conv1_1"] < 0).any() and (out["relu1_2"] >= 0).all()


def test_average_pooling_replaces_max_pooling():
    vgg = VGGFeatures(["conv3_1"], weights=None, pooling="avg")
    pools = [m for m in vgg.features if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    assert len(pools) == 2 and all(isinstance(m, nn.AvgPool2d) for m in pools)
    with pytest.raises(ValueError, match="pooling"):
        VGGFeatures(["conv3_1"], weights=None, pooling="median")


def test_channels_last_gives_the_same_features():
    torch.manual_seed(1)
    fast = VGGFeatures(["relu3_1"], weights=None, channels_last=True)
    plain = VGGFeatures(["relu3_1"], weights=None, channels_last=False)
    plain.load_state_dict(fast.state_dict())
    image = torch.rand(1, 3, 32, 24)
    torch.testing.assert_close(fast(image)["relu3_1"], plain(image)["relu3_1"],
                               rtol=1e-4, atol=1e-5)


def test_activation_bytes_counts_every_layer_output():
    vgg = VGGFeatures(["conv2_1"], weights=None)  # conv1_1 relu conv1_2 relu pool1 conv2_1
    expected = 4 * (4 * 64 * 32 * 32 + 64 * 16 * 16 + 128 * 16 * 16)
    assert vgg.activation_bytes(32, 32) == expected


def _saved_features(tmp_path, full: bool):
    """A state_dict file for the first layers, in torchvision's full or features-only layout."""
    torch.manual_seed(2)
    source = VGGFeatures(["relu1_2"], weights=None)
    state = {k.removeprefix("features."): v for k, v in source.state_dict().items()}
    if full:
        state = {f"features.{k}": v for k, v in state.items()}
        state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / ("full.pth" if full else "features.pth")
    torch.save(state, path)
    return path, source


@pytest.mark.parametrize("full", [True, False])
def test_weights_load_from_a_state_dict_file(tmp_path, full):
    path, source = _saved_features(tmp_path, full)
    loaded = VGGFeatures(["conv1_2"], weights=path)
    torch.testing.assert_close(loaded.features[2].weight, source.features[2].weight)


def test_weights_file_lacking_layers_or_missing_or_not_a_state_dict(tmp_path):
    path, _ = _saved_features(tmp_path, full=False)
    with pytest.raises(WeightsError, match=r"lacks VGG-19 weights 5\.weight"):
        VGGFeatures(["conv2_1"], weights=path)
    with pytest.raises(WeightsError, match="does not exist"):
        VGGFeatures(["conv1_1"], weights=tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth is not a PyTorch state_dict"):
        VGGFeatures(["conv1_1"], weights=junk)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """A private torch hub folder where any download attempt fails like a machine offline."""
    def refuse(url, dst, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"


def test_failed_download_says_which_url_and_where_to_put_the_file(offline_hub):
    with pytest.raises(WeightsError) as info:
        VGGFeatures(["conv1_1"])
    message = str(info.value)
    assert DEFAULT_WEIGHTS.url in message
    assert str(offline_hub) in message and "--weights PATH" in message


def test_weights_already_in_the_hub_cache_load_without_download(offline_hub, tmp_path):
    path, source = _saved_features(tmp_path, full=True)
    offline_hub.parent.mkdir(parents=True)
    path.rename(offline_hub)
    loaded = VGGFeatures(["relu1_2"], weights="IMAGENET1K_V1")
    torch.testing.assert_close(loaded.features[0].weight, source.features[0].weight)
