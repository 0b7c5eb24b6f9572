"""One vocabulary for element types: torch dtypes for numbers, ``bytes`` (``loaders.string``) for text.

Accepts what TF1 code and PyTorch code write: ``torch.float32``, ``numpy.float32``, ``"float32"``,
``"float"``, ``tf.string``-style ``"string"``, ``str`` or ``bytes``.
"""
from __future__ import annotations

from typing import Any, Union

import numpy as np
import torch

#: The dtype of string and raw-bytes components (TF's ``tf.string``); such values stay ``bytes``.
string = bytes

DType = Union[torch.dtype, type]

_NAMES = {
    "float": torch.float32,
    "double": torch.float64,
    "half": torch.float16,
    "int": torch.int32,
    "long": torch.int64,
    "string": string,
    "str": string,
    "bytes": string,
}


def as_dtype(dtype: Any) -> DType:
    """Return the canonical dtype (a ``torch.dtype`` or ``loaders.string``) for ``dtype``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (bytes, str, np.bytes_, np.str_, object):
        return string
    if isinstance(dtype, str):
        key = dtype.lower().removeprefix("tf.").removeprefix("torch.")
        if key in _NAMES:
            return _NAMES[key]
        candidate = getattr(torch, key, None)
        if isinstance(candidate, torch.dtype):
            return candidate
        raise ValueError(f"unknown dtype {dtype!r}: expected a torch dtype name such as 'float32', or 'string'")
    try:
        npd = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"unknown dtype {dtype!r}: expected a torch.dtype, numpy dtype, type name or bytes") from None
    if npd.kind in "SUO":
        return string
    return torch.from_numpy(np.zeros(0, dtype=npd)).dtype


def is_string(dtype: DType) -> bool:
    """True for the bytes dtype."""
    return dtype is string


def dtype_name(dtype: DType) -> str:
    """A short readable name for messages: ``float32``, ``string``."""
    return "string" if is_string(dtype) else str(dtype).removeprefix("torch.")


__all__ = ["string", "DType", "as_dtype", "is_string", "dtype_name"]
