"""Where the tests find TensorFlow: an interpreter of its own, since the test venv never has it.

``LOADERS_TF_PYTHON`` names it (``.ci/run`` makes ``.venv-tf`` with ``tensorflow-cpu`` and sets
it), else ``.venv-tf/bin/python`` in the checkout is used when present. Used by the oracle
(``test_oracle.py``) and by the tests that compare with TensorFlow through ``run_tensorflow``.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
#: Why a test that needs TensorFlow skips.
MISSING = ("no TensorFlow interpreter: set LOADERS_TF_PYTHON to a python with tensorflow-cpu "
           "(.ci/run makes .venv-tf)")


def tf_python() -> Optional[str]:
    """The TensorFlow interpreter: $LOADERS_TF_PYTHON, else the checkout's .venv-tf, else None."""
    named = os.environ.get("LOADERS_TF_PYTHON")
    if named:
        return named
    local = ROOT / ".venv-tf" / "bin" / "python"
    return str(local) if local.exists() else None


def run_tensorflow(code: str, *args: object, timeout: float = 600) -> str:
    """Run ``code`` in the TensorFlow interpreter with ``args`` as its argv: what it printed. The
    calling test skips when there is no interpreter, and fails with TF's stderr when it fails."""
    import pytest

    python = tf_python()
    if python is None:
        pytest.skip(MISSING)
    done = subprocess.run([python, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"the TensorFlow side failed ({python}):\n{done.stderr[-4000:]}"
    return done.stdout
