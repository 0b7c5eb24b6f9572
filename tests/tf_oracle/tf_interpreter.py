"""Where the tests find TensorFlow: an interpreter of its own, since the test venv never has it.

``LOADERS_TF_PYTHON`` names it (``.ci/run`` makes ``.venv-tf`` with ``tensorflow-cpu`` and sets
it), else ``.venv-tf/bin/python`` in the checkout is used when present. Used by the oracle
(``test_oracle.py``) and by ``tests/test_tfrecord_tensorflow.py``.
"""
from __future__ import annotations

import os
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
