"""Encoding Python values as ``tf.train.Example`` / ``SequenceExample`` records.

Each value becomes one ``Feature``: bytes and str give a ``BytesList``; bools and integers an
``Int64List`` (range-checked); floats a ``FloatList`` (stored as float32, as in TF); numpy arrays
and tensors are flattened and typed by their dtype; lists may mix ints and floats (floats win).
An empty list gives a ``Feature`` with no value list, which TF reads as an empty or missing
feature. Map keys are written sorted, so the bytes equal TF's deterministic serialization.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from loaders.errors import InvalidArgumentError
from loaders.tfrecord import protos
from loaders.tfrecord.wire import excerpt

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _too_big(key: str, value: int) -> InvalidArgumentError:
    shown = str(value) if value.bit_length() <= 128 else f"of {value.bit_length()} bits"
    return InvalidArgumentError(f"feature {excerpt(key)}: value {shown} does not fit in int64")


def _flatten(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return [item for part in value for item in _flatten(part)]
    return [value]


def _fill_array(feature: Any, array: np.ndarray, key: str) -> None:
    if array.dtype.kind == "f":
        feature.float_list.value.extend(array.astype(np.float32).ravel().tolist())
    elif array.dtype.kind in "iub":
        if array.size and array.dtype.kind == "u" and int(array.max()) > _INT64_MAX:
            raise _too_big(key, int(array.max()))
        feature.int64_list.value.extend(array.astype(np.int64).ravel().tolist())
    elif array.dtype.kind in "SUO":
        _fill_list(feature, array.ravel().tolist(), key)
    else:
        raise InvalidArgumentError(
            f"feature {excerpt(key)}: cannot encode dtype {array.dtype}: expected float, integer, bool or bytes"
        )


def _fill_list(feature: Any, items: list, key: str) -> None:
    if not items:
        return
    if all(isinstance(item, (bytes, bytearray, memoryview, str)) for item in items):
        feature.bytes_list.value.extend(item.encode() if isinstance(item, str) else bytes(item) for item in items)
        return
    if all(isinstance(item, (bool, int, np.integer, np.bool_)) for item in items):
        ints = [int(item) for item in items]
        bad = next((i for i in ints if not _INT64_MIN <= i <= _INT64_MAX), None)
        if bad is not None:
            raise _too_big(key, bad)
        feature.int64_list.value.extend(ints)
        return
    if all(isinstance(item, (bool, int, float, np.integer, np.floating, np.bool_)) for item in items):
        feature.float_list.value.extend(float(item) for item in items)
        return
    kinds = sorted({type(item).__name__ for item in items})
    raise InvalidArgumentError(
        f"feature {excerpt(key)}: cannot encode a list of {', '.join(kinds)}: expected all bytes/str, all numbers"
    )


def to_feature(value: Any, key: str = "") -> Any:
    """One ``tf.train.Feature`` message for a Python value, array, tensor or ready ``Feature``."""
    feature = protos.Feature()
    if isinstance(value, protos.Feature):
        feature.CopyFrom(value)
    elif getattr(getattr(value, "DESCRIPTOR", None), "full_name", None) == "tensorflow.Feature":
        feature.ParseFromString(value.SerializeToString())  # a TensorFlow tf.train.Feature
    elif isinstance(value, torch.Tensor):
        _fill_array(feature, value.detach().cpu().numpy(), key)
    elif isinstance(value, np.ndarray):
        _fill_array(feature, value, key)
    elif isinstance(value, (list, tuple)):
        _fill_list(feature, _flatten(value), key)
    elif isinstance(value, (bytes, bytearray, memoryview, str, bool, int, float, np.generic)):
        _fill_list(feature, [value.item() if isinstance(value, np.generic) else value], key)
    else:
        raise InvalidArgumentError(
            f"feature {excerpt(key)}: cannot encode {type(value).__name__}: expected bytes, str, int, float, a list of "
            "them, a numpy array or a tensor"
        )
    return feature


def _features(message: Any, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if not isinstance(key, str):
            raise InvalidArgumentError(f"feature key {excerpt(key)}: expected a str")
        message.feature[key].CopyFrom(to_feature(value, key))


def encode_example(features: Mapping[str, Any]) -> bytes:
    """A serialized ``tf.train.Example`` holding one feature per dict entry."""
    example = protos.Example()
    _features(example.features, features)
    return example.SerializeToString(deterministic=True)


def encode_sequence_example(
    context: Optional[Mapping[str, Any]] = None, feature_lists: Optional[Mapping[str, Sequence[Any]]] = None
) -> bytes:
    """A serialized ``tf.train.SequenceExample``: context features and, per key, one value per step."""
    example = protos.SequenceExample()
    _features(example.context, context or {})
    for key, steps in (feature_lists or {}).items():
        target = example.feature_lists.feature_list[key].feature
        for step in steps:
            target.add().CopyFrom(to_feature(step, key))
    return example.SerializeToString(deterministic=True)


__all__ = ["encode_example", "encode_sequence_example", "to_feature"]
