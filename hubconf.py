"""torch hub entry points for ``torchstyle``: ``torch.hub.load(<repo or dir>, <entry>, ...)``.

    extractor = torch.hub.load("owner/repo", "vgg19_features", layers=["relu3_1"])
    transfer = torch.hub.load("owner/repo", "style_transfer")
    picture = transfer(photo, painting, size=512)          # PIL images or [0, 1] tensors

``weights`` defaults to torchvision's ``VGG19_Weights.IMAGENET1K_V1`` (downloaded once into the
torch hub cache); pass a state_dict path, or ``None`` for random weights. Only the entry points
are public names here (``torch.hub.list`` shows every public callable); the package is imported
inside them.
"""
from __future__ import annotations

# every third-party module that torchstyle imports (PIL is the pillow package)
dependencies = ["torch", "torchvision", "numpy", "PIL", "tqdm"]


def vgg19_features(layers=None, weights="IMAGENET1K_V1", pooling: str = "max", **kwargs):
    """A frozen VGG-19 feature extractor: ``extractor(images)`` returns ``{layer name: output}``.

    Images are ``(B, 3, H, W)`` in ``[0, 1]``; layers are names such as ``conv1_1`` or ``relu4_2``
    (default: the style layers conv1_1 ... conv5_1 and the content layer conv4_2).
    """
    from torchstyle.vgg import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, VGGFeatures
    layers = DEFAULT_STYLE_LAYERS + DEFAULT_CONTENT_LAYERS if layers is None else layers
    return VGGFeatures(layers, weights=weights, pooling=pooling, **kwargs)


def style_transfer(weights="IMAGENET1K_V1", **kwargs):
    """A ready :class:`torchstyle.StyleTransfer`: call it with a content and a style image."""
    from torchstyle import StyleTransfer
    return StyleTransfer(weights=weights, **kwargs)
