"""What a queue element may hold: declared dtypes, shapes and names, checked at enqueue, batched at dequeue.

A :class:`Spec` turns what a user enqueues (a value, a list, a dict; tensors, numpy arrays, Python
scalars, ``bytes``/``str``) into the internal element, a tuple with one entry per component, and
turns elements back into what a dequeue returns (a value, a list or a dict; batches stacked or
padded on a new dim 0). Every error names the component and is TF's class for it: a bad shape,
count or key is an ``InvalidArgumentError`` (a ``ValueError``); a value that does not convert to
the declared dtype a :class:`ConversionError`, also a ``TypeError`` as TF's conversion raises.
Construction errors are plain ``ValueError`` s, as TF raises them while building the graph.
"""
from __future__ import annotations

import functools
import operator
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from loaders.dtypes import DType, as_dtype, dtype_name, is_string
from loaders.errors import InvalidArgumentError

Shape = Optional[tuple]  # None: any shape; a tuple of ints, or of ints and None dims when padding


class ConversionError(InvalidArgumentError, TypeError):
    """A value that does not convert to its component's dtype without changing (TF: TypeError)."""


def as_shape_list(shapes: Any, count: int, allow_none_dims: bool) -> list:
    """Normalize ``shapes`` as TF1 does: None, one shape, or a list with one shape per component."""
    if shapes is None:
        return [None] * count
    if isinstance(shapes, torch.Size) or not isinstance(shapes, (list, tuple)):
        shapes = [shapes]
    elif all(dim is None or isinstance(dim, int) for dim in shapes):
        shapes = [shapes]
    if len(shapes) != count:
        raise ValueError(f"shapes has {len(shapes)} entries but dtypes has {count}: give one shape per component")
    result = []
    for index, shape in enumerate(shapes):
        if not isinstance(shape, (list, tuple, torch.Size)):
            raise ValueError(f"shape of component {index} must be a list of ints such as [4] or [], got {shape!r}")
        for dim in shape:
            if dim is None and allow_none_dims:
                continue
            if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
                allowed = "ints >= 0 or None" if allow_none_dims else "ints >= 0 (None dims need PaddingFIFOQueue)"
                raise ValueError(f"shape of component {index} must hold {allowed}, got {list(shape)!r}")
        result.append(tuple(shape))
    return result


def _shape_text(shape: Sequence) -> str:
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


class Component:
    """One component of an element: its label for messages, dtype and declared shape."""

    __slots__ = ("label", "dtype", "shape", "size", "string")

    def __init__(self, label: str, dtype: DType, shape: Shape) -> None:
        self.label = label
        self.dtype = dtype
        self.shape = shape
        self.string = is_string(dtype)
        # torch.Size when fully known: the fast path compares it with a tensor's shape directly.
        known = shape is not None and None not in shape
        self.size = torch.Size(shape) if known else None

    def check(self, value: Any) -> Any:
        """Return ``value`` as this component holds it (tensor or bytes); raise InvalidArgumentError if not."""
        if type(value) is torch.Tensor and value.dtype is self.dtype and value.shape == self.size:
            return value
        if self.string:
            return self._check_strings(value, self.shape)
        tensor = self._to_tensor(value)
        self._check_dims(tuple(tensor.shape))
        return tensor

    def check_many(self, value: Any) -> Any:
        """Check a batch along dim 0 (``enqueue_many``): a tensor, or a list for strings."""
        if self.string:
            if isinstance(value, np.ndarray):
                value = value.tolist()
            if not isinstance(value, (list, tuple)):
                got = type(value).__name__
                raise InvalidArgumentError(f"{self.label}: enqueue_many needs a list of values along dim 0, got {got}")
            return [self._check_strings(v, self.shape) for v in value]
        tensor = self._to_tensor(value)
        if tensor.dim() == 0:
            raise InvalidArgumentError(f"{self.label}: enqueue_many needs a batch (dim 0), got a scalar")
        self._check_dims(tuple(tensor.shape[1:]))
        return tensor

    def _to_tensor(self, value: Any) -> torch.Tensor:
        """Convert to this dtype when no value changes (floating-point rounding aside)."""
        if isinstance(value, torch.Tensor):
            source = value
        else:
            try:
                source = torch.as_tensor(np.asarray(value))
            except (TypeError, ValueError, RuntimeError) as err:
                want = dtype_name(self.dtype)
                raise ConversionError(f"{self.label}: expected {want} values, got {value!r:.80} ({err})") from None
        if source.dtype is self.dtype:
            return source
        converted = source.to(self.dtype)
        both_float = source.is_floating_point() and converted.is_floating_point()
        both_complex = source.is_complex() and converted.is_complex()
        if both_float or both_complex:
            return converted
        if not source.is_complex() and torch.equal(converted.to(source.dtype), source):
            return converted
        raise ConversionError(
            f"{self.label}: values of dtype {dtype_name(source.dtype)} do not convert to "
            f"{dtype_name(self.dtype)} without changing them"
        )

    def _check_dims(self, dims: tuple) -> None:
        shape = self.shape
        if shape is None or (len(dims) == len(shape) and all(d is None or d == n for d, n in zip(shape, dims))):
            return
        raise InvalidArgumentError(f"{self.label}: expected shape {_shape_text(shape)}, got {_shape_text(dims)}")

    def _check_strings(self, value: Any, shape: Shape, depth: int = 0) -> Any:
        """bytes for a scalar, nested lists of bytes for a shaped string component."""
        if isinstance(value, (bytes, np.bytes_)):
            if shape is None or len(shape) == depth:
                return bytes(value)
        elif isinstance(value, (str, np.str_)):
            if shape is None or len(shape) == depth:
                return str(value).encode("utf-8")
        elif isinstance(value, (list, tuple, np.ndarray)):
            if shape is None:
                return [self._check_strings(v, None) for v in value]
            if depth < len(shape) and shape[depth] in (None, len(value)):
                return [self._check_strings(v, shape, depth + 1) for v in value]
        else:
            raise ConversionError(f"{self.label}: expected bytes or str, got {type(value).__name__}")
        want = "any shape" if shape is None else f"shape {_shape_text(shape)}"
        raise InvalidArgumentError(f"{self.label}: string value {value!r:.80} does not have {want}")


def _as_dict(names: list, element: tuple) -> dict:
    return dict(zip(names, element))


def _string_dims(value: Any, depth: int) -> list:
    """The lengths of a nested list of bytes, ``depth`` levels deep (max over ragged levels)."""
    if depth == 0:
        return []
    inner = [_string_dims(v, depth - 1) for v in value]
    return [len(value)] + [max(dims) for dims in zip(*inner)] if inner else [len(value)] + [0] * (depth - 1)


def _pad_strings(value: Any, dims: list) -> Any:
    if not dims:
        return value
    padded = [_pad_strings(v, dims[1:]) for v in value]
    filler = _pad_strings([], dims[1:]) if len(dims) > 1 else b""
    return padded + [filler] * (dims[0] - len(value))


class Spec:
    """Declared components of a queue element; checks input and formats output."""

    #: What ``dequeue`` returns for one element tuple: the value, a list of values, or a dict.
    output: Callable[[tuple], Any]

    def __init__(self, dtypes: Any, shapes: Any = None, names: Any = None, padded: bool = False) -> None:
        if not isinstance(dtypes, (list, tuple)):
            dtypes = [dtypes]
        if not dtypes:
            raise ValueError("dtypes must name at least one component")
        dtypes = [as_dtype(d) for d in dtypes]
        if names is not None:
            names = list(names) if isinstance(names, (list, tuple)) else [names]
            if len(names) != len(dtypes) or len(set(names)) != len(names):
                raise ValueError(f"names {names!r} must be {len(dtypes)} distinct names, one per dtype")
        if padded and (not isinstance(shapes, (list, tuple)) or isinstance(shapes, torch.Size) or not shapes
                       or any(shape is None or isinstance(shape, int) for shape in shapes)):
            raise ValueError(
                "PaddingFIFOQueue needs shapes= as a list with one shape per component, None for the dims "
                f"to pad (e.g. [[None, 2]]), got {shapes!r}"
            )
        shapes = as_shape_list(shapes, len(dtypes), allow_none_dims=padded)
        labels = [f"component {i}" + (f" ({names[i]!r})" if names else "") for i in range(len(dtypes))]
        self.components = tuple(Component(*args) for args in zip(labels, dtypes, shapes))
        self.dtypes = dtypes
        self.shapes = shapes
        self.names = names
        self.padded = padded
        self._single = len(dtypes) == 1 and names is None
        # enqueue's fast path: one tensor component of known shape, given a tensor that matches.
        first = self.components[0]
        fast = self._single and not first.string and first.size is not None
        self._fast_dtype = first.dtype if fast else None
        self._fast_size = first.size
        if self._single:
            self.output = operator.itemgetter(0)
        elif names is not None:
            self.output = functools.partial(_as_dict, names)
        else:
            self.output = list

    def __reduce__(self) -> tuple:
        shapes = None if self.shapes == [None] * len(self.dtypes) else self.shapes
        return Spec, (self.dtypes, shapes, self.names, self.padded)

    def _values(self, vals: Any) -> Sequence:
        """The per-component values of one enqueue call, in declaration order."""
        if self.names is not None:
            if not isinstance(vals, dict):
                got = type(vals).__name__
                raise InvalidArgumentError(f"this queue has names={self.names!r}: enqueue a dict, got {got}")
            unknown = sorted(map(str, set(vals) - set(self.names)))
            missing = [n for n in self.names if n not in vals]
            if unknown or missing:
                raise InvalidArgumentError(
                    f"enqueue dict: unknown keys {unknown}, missing keys {missing}; expected {self.names}"
                )
            return [vals[n] for n in self.names]
        if isinstance(vals, dict):
            raise InvalidArgumentError("this queue has no names=: enqueue a value or a list, not a dict")
        if type(vals) not in (list, tuple):
            vals = (vals,)
        if len(vals) != len(self.components):
            hint = " (wrap a list value in a list: [value])" if len(self.components) == 1 else ""
            raise InvalidArgumentError(f"expected {len(self.components)} components, got {len(vals)}{hint}")
        return vals

    def element(self, vals: Any) -> tuple:
        """Check one element (``enqueue``) and return it as a tuple of components."""
        if type(vals) is torch.Tensor and vals.dtype is self._fast_dtype and vals.shape == self._fast_size:
            return (vals,)
        return tuple([c.check(v) for c, v in zip(self.components, self._values(vals))])

    def columns(self, vals: Any) -> list:
        """Check a batch (``enqueue_many``): one tensor (list for strings) per component, equal dim 0."""
        columns = [c.check_many(v) for c, v in zip(self.components, self._values(vals))]
        if len({len(col) for col in columns}) > 1:
            raise InvalidArgumentError(f"enqueue_many: components differ in dim 0 size: {[len(c) for c in columns]}")
        return columns

    @staticmethod
    def split(columns: list) -> list:
        """The element tuples of a checked batch (rows of each column, as views)."""
        return list(zip(*[c.unbind(0) if isinstance(c, torch.Tensor) else c for c in columns]))

    def batch(self, elements: list) -> Any:
        """What ``dequeue_many`` returns: each component stacked (or padded) on a new dim 0.

        No elements give empty batches: tensors of shape [0, ...], unknown dims 0, as in TF.
        """
        columns = []
        for index, component in enumerate(self.components):
            values = [e[index] for e in elements]
            if component.string:
                if self.padded and component.shape:
                    dims = _string_dims(values, len(component.shape) + 1)[1:]
                    values = [_pad_strings(v, dims) for v in values]
                columns.append(values)
            elif self.padded or not values:
                columns.append(_pad_tensors(values, component.dtype, component.shape))
            else:
                columns.append(torch.stack(values))
        return self.output(tuple(columns))

    def require_shapes(self, op: str) -> None:
        """dequeue_many/dequeue_up_to stack elements, so (as in TF1) every shape must be declared."""
        if None in self.shapes:
            raise InvalidArgumentError(f"{op} needs every component's shape: create the queue with shapes=")


def _pad_tensors(values: list, dtype: torch.dtype, shape: tuple) -> torch.Tensor:
    """Stack tensors whose None dims differ, padding each with 0 up to the batch maximum."""
    dims = [n if n is not None else max((v.shape[d] for v in values), default=0) for d, n in enumerate(shape)]
    out = torch.zeros([len(values)] + dims, dtype=dtype)
    for row, value in zip(out, values):
        row[tuple(slice(0, n) for n in value.shape)] = value
    return out


__all__ = ["Component", "ConversionError", "Spec", "Shape", "as_shape_list"]
