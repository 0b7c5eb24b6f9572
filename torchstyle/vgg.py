"""The frozen VGG-19 feature extractor: layer names, weights, cutting, pooling and forward hooks.

torchvision's configuration table ``cfgs["E"]`` (VGG-19) drives both the network
(``make_layers``) and the names of its layers, so ``LAYER_NAMES[i]`` is always
``torchvision.models.vgg19().features[i]``::

    conv1_1 relu1_1 conv1_2 relu1_2 pool1 conv2_1 relu2_1 ... conv5_4 relu5_4 pool5

A ``conv`` name records the convolution's output before its ReLU (as the PyTorch tutorial
does); a ``relu`` name records it after (as the original Caffe code and Johnson's
neural-style do, where the ReLU runs in place).
"""
from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import VGG19_Weights
from torchvision.models.vgg import cfgs, make_layers

__all__ = [
    "LAYER_NAMES", "DEFAULT_STYLE_LAYERS", "DEFAULT_CONTENT_LAYERS", "DEFAULT_WEIGHTS",
    "WeightsError", "VGGFeatures", "layer_index", "load_state_dict",
]

logger = logging.getLogger(__name__)


def _layer_names(cfg: Sequence[Union[int, str]]) -> tuple[str, ...]:
    """Name every module that ``make_layers(cfg)`` builds, block by block."""
    names: list[str] = []
    block, conv = 1, 0
    for entry in cfg:
        if entry == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return tuple(names)


VGG19_CFG = cfgs["E"]
LAYER_NAMES = _layer_names(VGG19_CFG)
DEFAULT_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
DEFAULT_CONTENT_LAYERS = ("conv4_2",)
DEFAULT_WEIGHTS = VGG19_Weights.IMAGENET1K_V1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Weights = Union[VGG19_Weights, str, os.PathLike, None]


class WeightsError(RuntimeError):
    """The VGG-19 weights could not be downloaded or read; the message says what to do."""


def layer_index(name: str) -> int:
    """Index in ``vgg19().features`` of a ``conv``/``relu`` name; unknown names list valid ones."""
    if name.startswith(("conv", "relu")) and name in LAYER_NAMES:
        return LAYER_NAMES.index(name)
    valid = ", ".join(n for n in LAYER_NAMES if not n.startswith("pool"))
    raise ValueError(f"unknown VGG-19 layer {name!r}; valid layers are: {valid}")


def _hub_checkpoint(url: str) -> Path:
    """Where ``torch.hub`` keeps (and looks for) the file downloaded from ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _download(weights: VGG19_Weights, progress: bool) -> Mapping[str, torch.Tensor]:
    """torchvision's weights from the torch hub cache, downloading them once."""
    target = _hub_checkpoint(weights.url)
    try:
        return torch.hub.load_state_dict_from_url(
            weights.url, model_dir=str(target.parent), progress=progress, check_hash=True,
            weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise WeightsError(
            f"could not get the VGG-19 weights from {weights.url} ({exc}); download that file "
            f"yourself and save it as {target}, or pass --weights PATH (weights=PATH in Python) "
            f"with a local VGG-19 state_dict") from exc


def _read_file(path: Path) -> Mapping[str, torch.Tensor]:
    """A state_dict saved with ``torch.save``, loaded without running pickled code."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's unpickler raises anything (KeyError, IndexError...) on garbage
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path} is not a PyTorch state_dict file ({reason})") from exc
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path} holds a {type(state).__name__}, expected a VGG-19 state_dict")
    return state


def load_state_dict(weights: Weights, progress: bool = True) -> dict[str, torch.Tensor]:
    """VGG-19 ``features`` weights keyed ``"0.weight"``, ``"0.bias"``, ... from any accepted source.

    ``weights`` is a ``VGG19_Weights`` member or its name (``"IMAGENET1K_V1"``, ``"DEFAULT"``):
    downloaded once into ``torch.hub.get_dir()/checkpoints``; or the path of a file saved with
    ``torch.save``: a full ``vgg19().state_dict()``, a ``features`` one, or a ``VGGFeatures``
    one. Keys outside ``features`` (the classifier) are ignored.
    """
    if isinstance(weights, str) and weights in VGG19_Weights.__members__:
        weights = VGG19_Weights[weights]
    if isinstance(weights, VGG19_Weights):
        state, source = _download(weights, progress), weights.url
    else:
        source = Path(weights)
        state = _read_file(source)
    features = {}
    for key, value in state.items():
        key = key.removeprefix("features.")
        if key.split(".")[0].isdigit():
            features[key] = value
    if not features:
        raise WeightsError(f"{source} holds no VGG-19 features weights "
                           f"(expected keys like 'features.0.weight' or '0.weight')")
    return features


def _cfg_prefix(modules: int) -> list[Union[int, str]]:
    """The shortest start of the VGG-19 table that builds at least ``modules`` modules."""
    built = 0
    for end, entry in enumerate(VGG19_CFG, start=1):
        built += 1 if entry == "M" else 2  # a pool, or a conv and its ReLU
        if built >= modules:
            return list(VGG19_CFG[:end])
    return list(VGG19_CFG)


def _init_random(features: nn.Sequential) -> None:
    """torchvision's initialization for VGG convolutions (Kaiming normal, zero bias)."""
    for module in features:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)


class VGGFeatures(nn.Module):
    """Frozen VGG-19 ``features`` cut after the deepest named layer; forward returns their outputs.

    Input: images in ``[0, 1]``, shape ``(B, 3, H, W)``; ImageNet mean/std normalization happens
    inside. Output: ``{name: tensor}`` for every name in ``layers``, recorded by forward hooks.
    ``pooling="avg"`` swaps max pooling for average pooling (Gatys et al. suggest it gives
    smoother results). ``weights=None`` gives torchvision's random initialization (tests).
    ``channels_last`` stores activations NHWC, faster for convolutions on CPU and CUDA.
    """

    def __init__(self, layers: Sequence[str], *, weights: Weights = DEFAULT_WEIGHTS,
                 pooling: str = "max", channels_last: bool = True, progress: bool = True) -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
        if not layers:
            raise ValueError("VGGFeatures needs at least one layer name")
        self.layers = tuple(dict.fromkeys(layers))
        indices = [layer_index(name) for name in self.layers]
        cut = max(indices) + 1
        features = make_layers(_cfg_prefix(cut))[:cut]
        if weights is None:
            _init_random(features)
        else:
            self._load(features, load_state_dict(weights, progress), weights)
        recorded = set(indices)
        for i, module in enumerate(features):
            if isinstance(module, nn.ReLU):
                # In place only where the conv output before it is not recorded.
                module.inplace = i - 1 not in recorded
            elif isinstance(module, nn.MaxPool2d) and pooling == "avg":
                features[i] = nn.AvgPool2d(kernel_size=2, stride=2)
        self.features = features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.channels_last = channels_last
        if channels_last:
            self.features.to(memory_format=torch.channels_last)
        self._outputs: dict[str, torch.Tensor] = {}
        for name, index in zip(self.layers, indices):
            features[index].register_forward_hook(self._recorder(name))
        self.eval()
        self.requires_grad_(False)

    @staticmethod
    def _load(features: nn.Sequential, state: Mapping[str, torch.Tensor], source: Weights) -> None:
        """Copy the weights of the layers kept after the cut; name what is missing or wrong."""
        wanted = features.state_dict().keys()
        missing = [key for key in wanted if key not in state]
        if missing:
            raise WeightsError(f"{source} lacks VGG-19 weights {', '.join(missing)}")
        try:
            features.load_state_dict({key: state[key] for key in wanted})
        except RuntimeError as exc:
            raise WeightsError(f"{source} does not hold VGG-19 weights: {exc}") from exc

    def _recorder(self, name: str):
        """A forward hook that keeps ``name``'s output for this forward pass."""
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self._outputs[name] = output
        return hook

    @property
    def num_pools(self) -> int:
        """How many 2x2 poolings run before the deepest recorded layer."""
        return sum(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in self.features)

    @property
    def min_side(self) -> int:
        """Smallest image side that still leaves the deepest recorded layer one pixel."""
        return 2 ** self.num_pools

    def activation_bytes(self, height: int, width: int, batch: int = 1) -> int:
        """Bytes of the float32 activations of one forward pass over a ``height x width`` image."""
        total, channels = 0, 3
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                channels = module.out_channels
            elif not isinstance(module, nn.ReLU):
                height, width = height // 2, width // 2
            total += batch * channels * height * width * 4
        return total

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs of the named layers for ``image`` (``(B, 3, H, W)`` in ``[0, 1]``)."""
        x = (image - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self._outputs = {}
        try:
            self.features(x)
            return self._outputs
        finally:
            self._outputs = {}
