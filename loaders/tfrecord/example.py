"""Decoding ``tf.train.Example`` / ``SequenceExample`` records into tensors, driven by TF's feature specs.

``FixedLenFeature``, ``VarLenFeature`` and ``FixedLenSequenceFeature`` keep TensorFlow's names,
arguments and checks (value counts, dtypes, required features, defaults). Numbers become
``torch.float32`` / ``torch.int64`` tensors and strings stay ``bytes``. A ``VarLenFeature`` gives
the 1-D tensor of its values (TF's ``SparseTensor.values``). With no description, every feature
is returned as a 1-D tensor, or a list of bytes.
"""
from __future__ import annotations

import collections
import math
from typing import Any, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from loaders.dtypes import as_dtype, dtype_name, string
from loaders.errors import InvalidArgumentError
from loaders.tfrecord.layout import LayoutCache, read_floats
from loaders.tfrecord.messages import scan_example, scan_sequence_example
from loaders.tfrecord.wire import EXCERPT_CHARS, KIND_NAMES, Located, Values, decode_values, excerpt

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
    """Values of ``shape`` repeated along a first dimension (per step in a SequenceExample);
    ``default_value``, a scalar, pads the shorter records of a batch (TF's padding value)."""

    shape: Sequence[int]
    dtype: Any
    allow_missing: bool = False
    default_value: Any = None


FeatureSpec = Union[FixedLenFeature, VarLenFeature, FixedLenSequenceFeature]
_SPEC_TYPES = (FixedLenFeature, VarLenFeature, FixedLenSequenceFeature)
_KINDS = {string: 1, torch.float32: 2, torch.int64: 3}
_NUMPY = {2: np.float32, 3: np.int64}


class _Spec:
    """One feature description, checked once (as TF checks it) and applied to every record."""

    def __init__(self, key: str, spec: Any, where: str) -> None:
        if not isinstance(spec, _SPEC_TYPES):
            raise InvalidArgumentError(
                f"{where}feature {excerpt(key)}: expected a FixedLenFeature, VarLenFeature or FixedLenSequenceFeature, "
                f"got {excerpt(spec)}"
            )
        self.key, self.spec, self.where = key, spec, where
        self.dtype = as_dtype(spec.dtype)
        if self.dtype not in _KINDS:
            raise TypeError(
                f"{where}feature {excerpt(key)}: unsupported dtype {dtype_name(self.dtype)}: expected float32, int64 or string"
            )
        self.kind = _KINDS[self.dtype]
        self.shape = () if isinstance(spec, VarLenFeature) else _shape(spec, key, where)
        self.size = math.prod(self.shape)
        self.fixed = not isinstance(spec, VarLenFeature)
        self.scalar = isinstance(spec, FixedLenFeature) and not self.shape
        self.stacked = isinstance(spec, FixedLenFeature) and self.kind != 1  # one [batch, *shape] tensor in a batch
        self.padded = isinstance(spec, FixedLenSequenceFeature)  # one [batch, steps, *shape] value in a batch
        self.default = self.padding = None
        value = getattr(spec, "default_value", None)
        if value is not None:
            flat = self._flat_default(value)
            if self.padded:
                if len(flat) != 1:
                    raise self.error(f"default_value has {len(flat)} values: a FixedLenSequenceFeature pads with a scalar")
                self.padding = flat[0]
            elif len(flat) != self.size:
                raise self.error(f"default_value has {len(flat)} values, expected {self.size} for shape {self.shape}")
            elif len(flat):  # TF: an empty default is no default
                self.default = flat

    def _flat_default(self, value: Any) -> Values:
        if self.kind == 1:
            flat = [value] if isinstance(value, (bytes, str)) else list(np.asarray(value, dtype=object).ravel())
            return [v.encode() if isinstance(v, str) else bytes(v) for v in flat]
        return np.asarray(value, dtype=_NUMPY[self.kind]).ravel()

    def error(self, what: str) -> InvalidArgumentError:
        """An error naming this feature and its dtype."""
        return InvalidArgumentError(f"{self.where}feature {excerpt(self.key)} ({dtype_name(self.dtype)}): {what}")

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

    def values(self, located: Optional[Located], empty_is_missing: bool = True) -> Values:
        """The checked flat values of one feature (numpy array or list of bytes); defaults for missing
        ones. A present Feature without a value list is missing in an Example (``empty_is_missing``),
        but holds zero values in a SequenceExample's context, as TF reads them."""
        if located is not None and (located[0] != 0 or not empty_is_missing):
            return self.check_count(self.raw(located) if located[0] else self.empty())
        if not isinstance(self.spec, FixedLenFeature):
            return self.empty()
        if self.default is None:
            raise self.error("is required but could not be found")
        return list(self.default) if self.kind == 1 else self.default.copy()

    def empty(self) -> Values:
        return [] if self.kind == 1 else np.zeros(0, _NUMPY[self.kind])

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


def _shape(spec: Any, key: str, where: str) -> tuple[int, ...]:
    """The description's shape as a tuple (an int is one dimension), checked as TF checks it."""
    shape = spec.shape
    if shape is None:
        raise InvalidArgumentError(f"{where}feature {excerpt(key)}: missing shape")
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if isinstance(spec, FixedLenFeature) and dims and dims[0] is None:
        raise InvalidArgumentError(f"{where}feature {excerpt(key)}: first dimension of shape {dims} unknown: "
                                   "consider using FixedLenSequenceFeature")
    for d in dims:
        if not isinstance(d, (int, np.integer)):
            raise InvalidArgumentError(f"{where}feature {excerpt(key)}: all dimensions of shape must be known, got {dims}")
        if d < 0:
            raise InvalidArgumentError(f"{where}feature {excerpt(key)}: dimension {d} must be >= 0")
    return tuple(int(d) for d in dims)


def _nest(values: list, shape: tuple) -> Any:
    if not shape:
        return values[0]
    if len(shape) == 1:
        return values
    step = len(values) // shape[0] if shape[0] else 0
    return [_nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _where(example_name: Optional[str]) -> str:
    """The prefix naming a record in messages (TF's ``example_names``), cut when long."""
    if not example_name:
        return ""
    text = str(example_name)
    return f"{text if len(text) <= EXCERPT_CHARS else excerpt(text)}: "


def compile_features(features: Optional[Mapping[str, FeatureSpec]], where: str = "") -> Optional[list[_Spec]]:
    """Check an Example's feature description once; None stays None (decode every feature)."""
    if features is None:
        return None
    if not features:
        raise InvalidArgumentError(f"{where}features cannot be empty")
    specs = [_Spec(key, spec, where) for key, spec in features.items()]
    for spec in specs:
        if spec.padded and not spec.spec.allow_missing:
            raise InvalidArgumentError(
                f"{where}feature {excerpt(spec.key)}: a FixedLenSequenceFeature in an Example requires allow_missing=True"
            )
    return specs


def _undescribed(located: Located) -> Value:
    if located[0] < 0:
        raise InvalidArgumentError("a feature holds a value list of no known type")
    values = decode_values(*located)
    return values if isinstance(values, list) else torch.from_numpy(values)


class ExampleDecoder:
    """Decodes serialized Examples by one feature description (TF's ``parse_single_example`` and
    ``parse_example``), remembering record layouts so that records shaped alike decode fast."""

    def __init__(self, features: Optional[Mapping[str, FeatureSpec]] = None, example_names: Optional[str] = None) -> None:
        self.specs = compile_features(features, _where(example_names))
        self.keys = None if self.specs is None else frozenset(spec.key for spec in self.specs)
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
        located = scan_example(record, self.keys)
        decoded = {spec.key: spec.output(spec.values(located.get(spec.key))) for spec in self.specs}
        if cacheable:
            layouts.learn(record, located, self.specs)
        return decoded

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_layouts"] = LayoutCache()  # compiled layouts are rebuilt in the receiving process
        state["_columns"] = LayoutCache(columns=True)
        return state

    def batch(self, records: Sequence[Any], names: Optional[Sequence[str]] = None) -> dict[str, Union[torch.Tensor, list]]:
        """Fixed-length numbers stacked to ``[batch, *shape]`` (one tensor per feature, built from
        the raw values of every record at once), ``FixedLenSequenceFeature`` values padded to
        ``[batch, steps, *shape]``; other features as per-record lists. ``names`` (TF's
        ``example_names``) name the bad record in an error, as its index does."""
        if self.specs is None:
            raise InvalidArgumentError("decoding a batch needs a feature description (features=...)")
        rows: list = []
        try:
            for record in records:
                rows.append(self._decode(record, self._columns))
        except InvalidArgumentError as exc:
            name = f" ({excerpt(names[len(rows)])})" if names is not None and len(names) > len(rows) else ""
            raise InvalidArgumentError(f"record {len(rows)}{name} of the batch: {exc}") from None
        out: dict[str, Union[torch.Tensor, list]] = {}
        for spec in self.specs:
            column = [row[spec.key] for row in rows]
            out[spec.key] = _stack(spec, column) if spec.stacked else _pad(spec, column) if spec.padded else column
        return out


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


def _pad(spec: _Spec, column: list) -> Union[torch.Tensor, list]:
    """A column of ``[steps, *shape]`` values padded with the description's scalar (else 0 or
    ``b""``) to the most steps of the batch, as TF's ``parse_example`` pads them."""
    steps = max((len(value) for value in column), default=0)
    if spec.kind == 1:
        pad = _nest([b"" if spec.padding is None else spec.padding] * spec.size, spec.shape)
        return [value + [pad] * (steps - len(value)) for value in column]
    out = torch.full((len(column), steps, *spec.shape), 0 if spec.padding is None else spec.padding.item(),
                     dtype=spec.dtype)
    for row, value in enumerate(column):
        out[row, : len(value)] = value
    return out


_DECODERS: "collections.OrderedDict[tuple, ExampleDecoder]" = collections.OrderedDict()
_DECODERS_KEPT = 32


def _spec_key(spec: Any) -> tuple:
    """A hashable key equal for descriptions that decode alike: TF1's list shapes and dtypes of any
    spelling become tuples and canonical dtypes (TypeError where that is impossible)."""
    if not isinstance(spec, _SPEC_TYPES):
        raise TypeError
    fields = list(spec)
    if not isinstance(spec, VarLenFeature):
        shape = spec.shape
        fields[0] = shape if shape is None or isinstance(shape, (int, np.integer)) else tuple(shape)
    fields[spec._fields.index("dtype")] = as_dtype(spec.dtype)
    if getattr(spec, "default_value", None) is not None:
        default = spec.default_value
        if not isinstance(default, (bytes, str, int, float)):
            array = np.asarray(default)
            default = (array.shape, array.dtype.str, tuple(array.ravel().tolist()))
        fields[-1] = default
    return (type(spec), *fields)


def decoder_for(features: Optional[Mapping[str, FeatureSpec]], example_names: Optional[str] = None) -> ExampleDecoder:
    """An :class:`ExampleDecoder`, reused across calls with an equal description (however its
    shapes and dtypes are spelled), so that its learned record layouts keep paying off."""
    try:
        key = (None if features is None else tuple((name, _spec_key(spec)) for name, spec in features.items()),
               example_names)
        decoder = _DECODERS.get(key)
    except (TypeError, ValueError):  # a description that cannot be a key: decode uncached (it may well raise)
        return ExampleDecoder(features, example_names)
    if decoder is None:
        decoder = ExampleDecoder(features, example_names)
        _DECODERS[key] = decoder
        while len(_DECODERS) > _DECODERS_KEPT:
            _DECODERS.popitem(last=False)
    return decoder


def parse_single_example(
    serialized: Any, features: Optional[Mapping[str, FeatureSpec]] = None, name: Optional[str] = None,
    example_names: Optional[str] = None,
) -> dict[str, Value]:
    """Decode one serialized ``tf.train.Example`` into ``{key: tensor or bytes}`` (TF's ``parse_single_example``)."""
    return decoder_for(features, example_names)(serialized)


def parse_example(
    serialized: Sequence[Any], features: Mapping[str, FeatureSpec], name: Optional[str] = None,
    example_names: Optional[Sequence[str]] = None,
) -> dict[str, Union[torch.Tensor, list]]:
    """Decode a batch of Examples (TF's ``parse_example``): fixed-length numbers are stacked to
    ``[batch, *shape]`` with one tensor per feature, ``FixedLenSequenceFeature`` numbers padded to
    ``[batch, steps, *shape]``; variable-length features and strings are lists with one entry per record."""
    return decoder_for(features).batch(serialized, example_names or None)


def parse_single_sequence_example(
    serialized: Any,
    context_features: Optional[Mapping[str, FeatureSpec]] = None,
    sequence_features: Optional[Mapping[str, FeatureSpec]] = None,
    example_name: Optional[str] = None,
    name: Optional[str] = None,
) -> tuple[dict[str, Value], dict[str, Value]]:
    """Decode one ``tf.train.SequenceExample`` into ``(context, sequences)``.

    A ``FixedLenSequenceFeature`` stacks its steps to ``[steps, *shape]``; a ``VarLenFeature``
    gives one 1-D tensor (or list of bytes) per step. A side without a description is empty, as
    in TF; with neither described, every context feature and every feature list is returned,
    the latter as lists of per-step values.
    """
    where = _where(example_name)
    if context_features is None and sequence_features is not None:
        context_features = {}
    elif sequence_features is None and context_features is not None:
        sequence_features = {}
    context_specs = None if context_features is None else [_Spec(k, s, where) for k, s in context_features.items()]
    list_specs = None if sequence_features is None else [_Spec(k, s, where) for k, s in sequence_features.items()]
    for spec in context_specs or []:
        if spec.padded:
            raise InvalidArgumentError(f"{where}context feature {excerpt(spec.key)}: expected a FixedLenFeature or "
                                       "VarLenFeature, not a FixedLenSequenceFeature")
    for spec in list_specs or []:
        if isinstance(spec.spec, FixedLenFeature):
            raise InvalidArgumentError(f"{where}sequence feature {excerpt(spec.key)}: expected a FixedLenSequenceFeature "
                                       "or VarLenFeature, not a FixedLenFeature")
    context, lists = scan_sequence_example(
        serialized, None if context_specs is None else [spec.key for spec in context_specs],
        None if list_specs is None else [spec.key for spec in list_specs],
    )
    if context_specs is None:
        decoded_context = {key: _undescribed(entry) for key, entry in context.items()}
    else:
        decoded_context = {spec.key: spec.output(spec.values(context.get(spec.key), empty_is_missing=False))
                           for spec in context_specs}
    if list_specs is None:
        return decoded_context, {key: [_undescribed(step) for step in steps] for key, steps in lists.items()}
    return decoded_context, {spec.key: _decode_steps(spec, lists.get(spec.key)) for spec in list_specs}


def _decode_steps(spec: _Spec, steps: Optional[list[Located]]) -> Value:
    if not spec.fixed:
        return [spec.output(spec.values(step)) for step in steps or []]
    if steps is None and not spec.spec.allow_missing:
        raise spec.error("feature list is required but could not be found")
    rows = [_step_values(spec, step) for step in steps or []]
    if spec.kind == 1:
        return [_nest(row, spec.shape) for row in rows]
    stacked = np.stack(rows) if rows else np.zeros(0, _NUMPY[spec.kind])
    return torch.from_numpy(stacked.reshape(len(rows), *spec.shape))


def _step_values(spec: _Spec, step: Located) -> Values:
    values = spec.raw(step) if step[0] else spec.empty()
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
