"""hubconf.py: the entry points load through torch.hub from this checkout, without network."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

import torchstyle

REPO = str(Path(__file__).resolve().parents[1])


def test_hub_feature_extractor_records_the_asked_layers():
    torch.manual_seed(0)
    extractor = torch.hub.load(REPO, "vgg19_features", source="local",
                               layers=["relu1_1", "conv2_1"], weights=None)
    features = extractor(torch.rand(2, 3, 32, 32))
    assert features["relu1_1"].shape == (2, 64, 32, 32)
    assert features["conv2_1"].shape == (2, 128, 16, 16)


def test_hub_style_transfer_takes_pil_images_and_tensors():
    torch.manual_seed(0)
    transfer = torch.hub.load(REPO, "style_transfer", source="local", weights=None, device="cpu",
                              style_layers=["conv1_1", "conv2_1"], content_layers=["conv2_2"])
    assert isinstance(transfer, torchstyle.StyleTransfer)
    photo = Image.new("RGB", (40, 30), (200, 120, 40))
    painting = torch.rand(3, 24, 24)
    picture = transfer(photo, painting, size=32, num_steps=2)
    assert isinstance(picture, Image.Image) and picture.size == (32, 24)
    result = transfer(torch.rand(1, 3, 16, 16), painting, size=None, num_steps=1)
    assert result.shape == (1, 3, 16, 16)


def test_hub_lists_only_the_entry_points(monkeypatch):
    """torch.hub.list's own rule (every public callable of hubconf), run on this checkout:
    torch.hub.list takes no source="local", so its download step is pointed here."""
    monkeypatch.setattr(torch.hub, "_get_cache_or_reload", lambda *args, **kwargs: REPO)
    assert torch.hub.list("owner/torchstyle") == ["style_transfer", "vgg19_features"]


def test_hub_dependencies_are_every_third_party_module_imported():
    """The project modules that importing hubconf and its entry points loads, scanned for the
    imports that loading them runs (not those inside functions, which optional features such as
    remote storage make when used): their third-party top-level modules are exactly hubconf's
    ``dependencies``."""
    program = ("import json, sys, hubconf; hubconf.style_transfer; import torchstyle.run; "
               "print(json.dumps(sorted(m.__file__ for n, m in list(sys.modules.items()) "
               "if n.split('.')[0] in ('torchstyle', 'loaders', 'hubconf') and getattr(m, '__file__', None))))")
    env = {**os.environ, "PYTHONPATH": REPO}
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    imported = set()
    for path in json.loads(done.stdout):
        for node in _loaded_imports(ast.parse(Path(path).read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__", "torchstyle", "loaders"}
    import hubconf
    assert sorted(third_party) == sorted(hubconf.dependencies)


def _loaded_imports(node: ast.AST):
    """The import statements of ``node`` outside function bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _loaded_imports(child)
