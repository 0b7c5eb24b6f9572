"""Numbers in CSV fields, read as TensorFlow's ``decode_csv`` reads them (absl's ``SimpleAtoi``,
``SimpleAtof`` and ``SimpleAtod``), shared by the exact CSV decoder and ``CSVDataset``'s type
inference.

Integers: decimal digits with an optional sign, ASCII whitespace around them allowed, in the
column type's range (``"3.0"`` and ``"1e3"`` are not integers). Floats: decimal (``1.5``, ``.5``,
``5.``, ``1e-3``), hexadecimal (``0x1.8p3``, ``0x10``), ``inf``/``infinity`` and ``nan``/``nan(...)``
in any case, with an optional sign; values out of range become ±inf or 0. A float32 is rounded
once, from the text, as ``strtof`` does, never through a float64 first (which can round twice).
"""
from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Union

import numpy as np
import torch

from .dtypes import DType

_WS = rb"[ \t\n\v\f\r]*"
_INT = re.compile(_WS + rb"([+-]?[0-9]+)" + _WS + rb"\Z")
_FLOAT = re.compile(
    _WS + rb"([+-]?)(?:"
    rb"0x((?=\.?[0-9a-f])[0-9a-f]*)(?:\.([0-9a-f]*))?(?:p([+-]?[0-9]+))?"  # hexadecimal
    rb"|((?=\.?[0-9])[0-9]*(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)"  # decimal
    rb"|(inf(?:inity)?)"
    rb"|(nan(?:\([0-9a-z_]*\))?)"
    rb")" + _WS + rb"\Z",
    re.IGNORECASE,
)
#: The range of each integer column type.
INT_RANGE = {torch.int32: (-(2**31), 2**31 - 1), torch.int64: (-(2**63), 2**63 - 1)}
#: The bits of float32's smallest normal number as a float64; below it float32's steps are fixed.
_FLOAT32_MIN_NORMAL_BITS = int(np.array(2.0**-126).view(np.int64))
_DECIMAL = b"0123456789.eE+-"


def parse_number(field: bytes, dtype: DType) -> Union[int, float]:
    """The value a non-empty ``field`` holds for a numeric column ``dtype``; ValueError if none."""
    return parse_float(field, dtype) if dtype.is_floating_point else parse_int(field, dtype)


def parse_int(field: bytes, dtype: DType) -> int:
    """The integer a non-empty ``field`` holds for an int32/int64 column; ValueError if none."""
    if field.isdigit():  # ASCII digits only: the common case, without the regular expression
        value = int(field)
    else:
        match = _INT.match(field)
        if match is None:
            raise ValueError(f"not an integer: {field[:40]!r}")
        value = int(match.group(1))
    low, high = INT_RANGE[dtype]
    if not low <= value <= high:
        raise ValueError(f"out of range for {dtype}")
    return value


def parse_float(field: bytes, dtype: DType) -> float:
    """The float a non-empty ``field`` holds; for float32 a double that casts to the correctly
    rounded float32 (so ``numpy``/``torch`` casts give ``strtof``'s answer). ValueError if none."""
    if not field.translate(None, _DECIMAL):  # digits, '.', 'e', sign: Python reads these as TF does
        value = float(field)
        if dtype is torch.float32 and _halfway(value):
            return _nearest(value, Fraction(field.decode("ascii")))
        return value
    match = _FLOAT.match(field)
    if match is None:
        raise ValueError(f"not a number: {field[:40]!r}")
    sign, hex_int, hex_frac, hex_exp, decimal, infinity, nan = match.groups()
    if infinity is not None:
        return -math.inf if sign == b"-" else math.inf
    if nan is not None:
        return math.nan
    if decimal is not None:
        text = sign + decimal
        value = float(text)
        exact = lambda: Fraction(text.decode("ascii"))  # noqa: E731
    else:
        digits, places = hex_int + (hex_frac or b""), len(hex_frac or b"")
        exponent = int(hex_exp or b"0") - 4 * places
        try:
            value = float.fromhex((sign + b"0x" + digits + b"p%d" % exponent).decode("ascii"))
        except OverflowError:
            return -math.inf if sign == b"-" else math.inf
        exact = lambda: (-1 if sign == b"-" else 1) * Fraction(int(digits, 16)) * Fraction(2) ** exponent  # noqa: E731
    return _nearest(value, exact()) if dtype is torch.float32 and _halfway(value) else value


def _halfway(value: float) -> bool:
    """Whether the double ``value`` lies exactly halfway between two float32s."""
    mantissa, exponent = math.frexp(value)
    if exponent > -126:  # float32's normal range (and beyond): 24 significant bits
        return (mantissa * 33554432.0) % 2.0 == 1.0  # an odd number of half steps (2**25 = 33554432)
    return value != 0.0 and math.ldexp(abs(value), 150) % 2.0 == 1.0  # subnormal float32 steps: 2**-149


def _nearest(value: float, number: Fraction) -> float:
    """``value``, halfway between two float32s, moved one double towards the exact ``number``
    when that differs, so that casting it to float32 rounds as ``number`` itself would."""
    if not math.isfinite(value) or number == value:
        return value
    return math.nextafter(value, math.inf if number > value else -math.inf)


def float32_ambiguous(values: np.ndarray) -> bool:
    """Whether casting these doubles to float32 could round differently from the texts they were
    read from: one lies exactly halfway between two float32s (its 29 bits below float32's
    precision are a one and zeros), or in float32's subnormal range (checked no further)."""
    bits = values.view(np.int64)
    if ((bits & 0x1FFFFFFF) == 0x10000000).any():
        return True
    magnitude = bits & 0x7FFFFFFFFFFFFFFF
    return bool(((magnitude != 0) & (magnitude < _FLOAT32_MIN_NORMAL_BITS)).any())


__all__ = ["INT_RANGE", "parse_number", "parse_int", "parse_float", "float32_ambiguous"]
