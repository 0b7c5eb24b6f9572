"""Decoding ``tf.train.Example`` / ``SequenceExample`` records into tensors, driven by TF's feature specs.

``FixedLenFeature``, ``VarLenFeature`` and ``FixedLenSequenceFeature`` keep TensorFlow's names,
arguments and checks (value counts, dtypes, required features, defaults). Numbers become
``torch.float32`` / ``torch.int64`` tensors and strings stay ``bytes``. A ``VarLenFeature`` gives
the 1-D tensor of its values (TF's ``SparseTensor.values``). With no description, every feature
is returned as a 1-D tensor, or a list of bytes.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from loaders.dtypes import as_dtype, dtype_name, string
from loaders.errors import InvalidArgumentError
from loaders.tfrecord.layout import LayoutCache, read_floats
from loaders.tfrecord.wire import KIND_NAMES, Located, Values, decode_values, scan_example, scan_sequence_example

Value = Union[torch.Tensor, bytes, list]


class FixedLenFeature(NamedTuple):
    """A feature with exactly ``prod(shape)`` values, returned with ``shape`` (TF's ``tf.io.FixedLenFeature``)."""

    shape: Sequence[int]
    dtype: Any
    default_value: Any = None


class VarLenFeature(NamedTuple):
    """A feature with any number of values, returned as a 1-D tensor or a list of bytes."""

    dtype: Any


class FixedLenSequenceFeature(NamedTuple):
    """Values of ``shape`` repeated along a first dimension (per step in a SequenceExample)."""

    shape: Sequence[int]
    dtype: Any
    allow_missing: bool = False
    default_value: Any = None


FeatureSpec = Union[FixedLenFeature, VarLenFeature, FixedLenSequenceFeature]
_KINDS = {string: 1, torch.float32: 2, torch.int64: 3}
_NUMPY = {2: np.float32, 3: np.int64}


class _Spec:
    """One feature description, checked once and applied to every record."""

    def __init__(self, key: str, spec: Any, where: str) -> None:
        if not isinstance(spec, (FixedLenFeature, VarLenFeature, FixedLenSequenceFeature)):
            raise InvalidArgumentError(
                f"{where}feature {key!r}: expected a FixedLenFeature, VarLenFeature or FixedLenSequenceFeature, "
                f"got {spec!r}"
            )
        self.key, self.spec, self.where = key, spec, where
        self.dtype = as_dtype(spec.dtype)
        if self.dtype not in _KINDS:
            raise InvalidArgumentError(
                f"{where}feature {key!r}: unsupported dtype {dtype_name(self.dtype)}: expected float32, int64 or string"
            )
        self.kind = _KINDS[self.dtype]
        shape = () if isinstance(spec, VarLenFeature) else tuple(spec.shape)
        if not all(isinstance(d, (int, np.integer)) and d >= 0 for d in shape):
            raise InvalidArgumentError(f"{where}feature {key!r}: shape {shape} must have known dimensions >= 0")
        self.shape = tuple(int(d) for d in shape)
        self.size = math.prod(self.shape)
        self.fixed = not isinstance(spec, VarLenFeature)
        self.scalar = isinstance(spec, FixedLenFeature) and not self.shape
        self.stacked = isinstance(spec, FixedLenFeature) and self.kind != 1  # one [batch, *shape] tensor in a batch
        self.default = None if getattr(spec, "default_value", None) is None else self._default()

    def _default(self) -> Values:
        value = self.spec.default_value
        if self.kind == 1:
            flat = [value] if isinstance(value, (bytes, str)) else list(np.asarray(value, dtype=object).ravel())
            flat = [v.encode() if isinstance(v, str) else bytes(v) for v in flat]
        else:
            flat = np.asarray(value, dtype=_NUMPY[self.kind]).ravel()
        if len(flat) != self.size:
            raise InvalidArgumentError(
                f"{self.where}feature {self.key!r}: default_value has {len(flat)} values, expected {self.size} "
                f"for shape {self.shape}"
            )
        return flat

    def error(self, what: str) -> InvalidArgumentError:
        """An error naming this feature and its dtype."""
        return InvalidArgumentError(f"{self.where}feature {self.key!r} ({dtype_name(self.dtype)}): {what}")

    def raw(self, located: Located) -> Values:
        """The values of a present feature, after checking its type."""
        if located[0] != self.kind:
            raise self.error(f"data types don't match: found {KIND_NAMES[located[0]]} values")
        return decode_values(*located)

    def check_count(self, values: Values) -> Values:
        """``values`` when their number suits the description, else an error."""
        if isinstance(self.spec, FixedLenFeature):
            if len(values) != self.size:
                raise self.error(f"expected {self.size} values for shape {self.shape}, found {len(values)}")
        elif self.fixed and self.size and len(values) % self.size:
            raise self.error(f"number of values should be divisible by {self.size}, found {len(values)}")
        return values

    def values(self, located: Optional[Located]) -> Values:
        """The checked flat values of one feature (numpy array or list of bytes); defaults for missing ones."""
        if located is not None and located[0] != 0:
            return self.check_count(self.raw(located))
        if not isinstance(self.spec, FixedLenFeature):
            return [] if self.kind == 1 else np.zeros(0, _NUMPY[self.kind])
        if self.default is None:
            raise self.error("is required but could not be found")
        return list(self.default) if self.kind == 1 else self.default.copy()

    def output_shape(self, count: int) -> tuple[int, ...]:
        """The shape that ``count`` values take: the description's, with a leading steps dimension
        for a ``FixedLenSequenceFeature`` and 1-D for a ``VarLenFeature``."""
        if isinstance(self.spec, FixedLenFeature):
            return self.shape
        if self.fixed:
            return (count // (self.size or 1), *self.shape)
        return (count,)

    def output(self, values: Values) -> Value:
        """Shape the values as the description says: a tensor, bytes or a (nested) list of bytes."""
        shape = self.output_shape(len(values))
        if self.kind == 1:
            return _nest(values, shape) if self.fixed else values
        return torch.from_numpy(values if values.shape == shape else values.reshape(shape))


def _nest(values: list, shape: tuple) -> Any:
    if not shape:
        return values[0]
    if len(shape) == 1:
        return values
    step = len(values) // shape[0] if shape[0] else 0
    return [_nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _where(example_name: Optional[str]) -> str:
    return f"{example_name}: " if example_name else ""


def compile_features(features: Optional[Mapping[str, FeatureSpec]], where: str = "") -> Optional[list[_Spec]]:
    """Check a feature description once; None stays None (decode every feature)."""
    if features is None:
        return None
    specs = [_Spec(key, spec, where) for key, spec in features.items()]
    for spec in specs:
        if isinstance(spec.spec, FixedLenSequenceFeature) and not spec.spec.allow_missing:
            raise InvalidArgumentError(
                f"{where}feature {spec.key!r}: a FixedLenSequenceFeature in an Example requires allow_missing=True"
            )
    return specs


def _undescribed(located: Located) -> Value:
    values = decode_values(*located)
    return values if isinstance(values, list) else torch.from_numpy(values)


class ExampleDecoder:
    """Decodes serialized Examples by one feature description (TF's ``parse_single_example`` and
    ``parse_example``), remembering record layouts so that records shaped alike decode fast."""

    def __init__(self, features: Optional[Mapping[str, FeatureSpec]] = None, example_names: Optional[str] = None) -> None:
        self.specs = compile_features(features, _where(example_names))
        self._layouts = LayoutCache()
        self._columns = LayoutCache(columns=True)

    def __call__(self, record: Any) -> dict[str, Value]:
        """``{key: tensor, bytes or list}`` for one serialized Example."""
        if self.specs is None:
            return {key: _undescribed(entry) for key, entry in scan_example(record).items()}
        return self._decode(record, self._layouts)

    def _decode(self, record: Any, layouts: LayoutCache) -> dict[str, Any]:
        """Decode one record through ``layouts`` when it matches one, else fully (and learn it)."""
        cacheable = type(record) is bytes
        if cacheable:
            layout = layouts.by_length.get(len(record))
            decoded = layout(record) if layout is not None else None
            if decoded is not None:
                return decoded
        located = scan_example(record)
        decoded = {spec.key: spec.output(spec.values(located.get(spec.key))) for spec in self.specs}
        if cacheable:
            layouts.learn(record, located, self.specs)
        return decoded

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_layouts"] = LayoutCache()  # compiled layouts are rebuilt in the receiving process
        state["_columns"] = LayoutCache(columns=True)
        return state

    def batch(self, records: Sequence[Any]) -> dict[str, Union[torch.Tensor, list]]:
        """Fixed-length numbers stacked to ``[batch, *shape]`` (one tensor per feature, built from
        the raw values of every record at once); other features as per-record lists."""
        if self.specs is None:
            raise InvalidArgumentError("decoding a batch needs a feature description (features=...)")
        rows = [self._decode(record, self._columns) for record in records]
        return {
            spec.key: _stack(spec, [row[spec.key] for row in rows]) if spec.stacked else [row[spec.key] for row in rows]
            for spec in self.specs
        }


def _stack(spec: _Spec, column: list) -> torch.Tensor:
    """One ``[batch, *shape]`` tensor from a column of raw float bytes, ints or tensors."""
    shape = (len(column), *spec.shape)
    if spec.kind == 2 and all(type(value) is bytes for value in column):
        joined = b"".join(column)
        return read_floats(joined, 0, len(joined), shape)
    if spec.kind == 3 and all(type(value) is int for value in column):
        return torch.tensor(column, dtype=torch.int64).reshape(shape)
    return torch.stack([_tensor(spec, value) for value in column])  # a mix: some records took the full path


def _tensor(spec: _Spec, value: Any) -> torch.Tensor:
    if type(value) is bytes:
        return read_floats(value, 0, len(value), spec.shape)
    if type(value) is int:
        return torch.tensor(value, dtype=torch.int64)
    return value


@functools.lru_cache(maxsize=32)
def _cached_decoder(features: tuple, example_names: Optional[str]) -> ExampleDecoder:
    return ExampleDecoder(dict(features), example_names)


def decoder_for(features: Optional[Mapping[str, FeatureSpec]], example_names: Optional[str] = None) -> ExampleDecoder:
    """An :class:`ExampleDecoder`, reused across calls with an equal (hashable) description."""
    try:
        return _cached_decoder(tuple(features.items()) if features is not None else None, example_names)
    except TypeError:  # a list default_value makes the description unhashable
        return ExampleDecoder(features, example_names)


def parse_single_example(
    serialized: Any, features: Optional[Mapping[str, FeatureSpec]] = None, name: Optional[str] = None,
    example_names: Optional[str] = None,
) -> dict[str, Value]:
    """Decode one serialized ``tf.train.Example`` into ``{key: tensor or bytes}`` (TF's ``parse_single_example``)."""
    return decoder_for(features, example_names)(serialized)


def parse_example(
    serialized: Sequence[Any], features: Mapping[str, FeatureSpec], name: Optional[str] = None,
    example_names: Optional[str] = None,
) -> dict[str, Union[torch.Tensor, list]]:
    """Decode a batch of Examples (TF's ``parse_example``): fixed-length numbers are stacked to
    ``[batch, *shape]`` with one tensor per feature; variable-length features and strings are
    lists with one entry per record."""
    return decoder_for(features, example_names).batch(serialized)


def parse_single_sequence_example(
    serialized: Any,
    context_features: Optional[Mapping[str, FeatureSpec]] = None,
    sequence_features: Optional[Mapping[str, FeatureSpec]] = None,
    example_name: Optional[str] = None,
    name: Optional[str] = None,
) -> tuple[dict[str, Value], dict[str, Value]]:
    """Decode one ``tf.train.SequenceExample`` into ``(context, sequences)``.

    A ``FixedLenSequenceFeature`` stacks its steps to ``[steps, *shape]``; a ``VarLenFeature``
    gives one 1-D tensor (or list of bytes) per step. With no description, every context
    feature and every feature list is returned, the latter as lists of per-step values.
    """
    where = _where(example_name)
    context, lists = scan_sequence_example(serialized)
    sequences: dict[str, Value] = {}
    if sequence_features is None:
        sequences = {key: [_undescribed(step) for step in steps] for key, steps in lists.items()}
    else:
        for key, spec in sequence_features.items():
            sequences[key] = _decode_steps(_Spec(key, spec, where), lists.get(key))
    return _decode_context(context_features, where, context), sequences


def _decode_context(
    features: Optional[Mapping[str, FeatureSpec]], where: str, located: Mapping[str, Located]
) -> dict[str, Value]:
    specs = compile_features(features, where)
    if specs is None:
        return {key: _undescribed(entry) for key, entry in located.items()}
    return {spec.key: spec.output(spec.values(located.get(spec.key))) for spec in specs}


def _decode_steps(spec: _Spec, steps: Optional[list[Located]]) -> Value:
    if isinstance(spec.spec, FixedLenFeature):
        raise InvalidArgumentError(
            f"{spec.where}sequence feature {spec.key!r}: expected a FixedLenSequenceFeature or VarLenFeature, "
            "not a FixedLenFeature"
        )
    if isinstance(spec.spec, VarLenFeature):
        return [spec.output(spec.values(step)) for step in steps or []]
    if steps is None and not spec.spec.allow_missing:
        raise spec.error("feature list is required but could not be found")
    rows = [_step_values(spec, step) for step in steps or []]
    if spec.kind == 1:
        return [_nest(row, spec.shape) for row in rows]
    stacked = np.stack(rows) if rows else np.zeros(0, _NUMPY[spec.kind])
    return torch.from_numpy(stacked.reshape(len(rows), *spec.shape))


def _step_values(spec: _Spec, step: Located) -> Values:
    if step[0] == 0:
        raise spec.error(f"a step has no values, expected {spec.size}")
    values = spec.raw(step)
    if len(values) != spec.size:
        raise spec.error(f"expected {spec.size} values per step for shape {spec.shape}, found {len(values)}")
    return values


__all__ = [
    "FeatureSpec",
    "FixedLenFeature",
    "FixedLenSequenceFeature",
    "VarLenFeature",
    "compile_features",
    "ExampleDecoder",
    "decoder_for",
    "parse_example",
    "parse_single_example",
    "parse_single_sequence_example",
]
