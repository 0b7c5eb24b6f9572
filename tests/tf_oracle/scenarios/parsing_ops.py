"""Scenarios from tensorflow/python/kernel_tests/io_ops/parsing_ops_test.py, plus wire-format edge cases.

Both sides parse the very same bytes: serialized ``Example`` / ``SequenceExample`` messages are built
here by a tiny protobuf encoder (so hand-made wire layouts, such as 10-byte varints, unpacked
lists, unknown fields, duplicate keys and fields out of order, are possible too). A step names a
parse function and its arguments, with feature descriptions written once (``Fixed``, ``Var``,
``Seq``) and built as ``tf.FixedLenFeature(..., tf.int64)`` on one side and
``loaders.FixedLenFeature(..., torch.int64)`` on the other.

TF returns a ``VarLenFeature`` as a ``SparseTensorValue`` (indices, values, dense_shape); loaders
returns its values (a 1-D tensor or list of bytes; one per record or step in a batch or feature
list). The loaders side rebuilds the three arrays from those values, and turns string features
(lists of bytes) into object arrays of TF's shape, so the records compare as they are.
SparseFeature and RaggedFeature, which loaders does not offer, are left out of the ports.
"""
from __future__ import annotations

import random
import struct
from typing import Any, NamedTuple, Optional

from harness import Scenario

# ---------------------------------------------------------------------------- protobuf encoder


def varint(value: int) -> bytes:
    """``value`` as a protobuf varint (negative numbers as their 64-bit two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return key(number, 2) + varint(len(payload)) + payload


def int64_feature(values: list, packed: bool = True) -> bytes:
    if packed:
        body = ld(1, b"".join(varint(v) for v in values)) if values else b""
    else:
        body = b"".join(key(1, 0) + varint(v) for v in values)
    return ld(3, body)


def float_feature(values: list, packed: bool = True) -> bytes:
    if packed:
        body = ld(1, struct.pack(f"<{len(values)}f", *values)) if values else b""
    else:
        body = b"".join(key(1, 5) + struct.pack("<f", v) for v in values)
    return ld(2, body)


def bytes_feature(values: list) -> bytes:
    return ld(1, b"".join(ld(1, v) for v in values))


def feature() -> bytes:
    """A ``Feature`` with no value list."""
    return b""


def entry(name: Any, value: bytes) -> bytes:
    """One map entry (``Features.feature`` or ``FeatureLists.feature_list``)."""
    return ld(1, ld(1, name if isinstance(name, bytes) else name.encode()) + ld(2, value))


def features(mapping: dict) -> bytes:
    return b"".join(entry(name, value) for name, value in mapping.items())


def example(mapping: Optional[dict] = None) -> bytes:
    return b"" if mapping is None else ld(1, features(mapping))


def feature_list(steps: list) -> bytes:
    return b"".join(ld(1, step) for step in steps)


def sequence_example(context: Optional[dict] = None, lists: Optional[dict] = None) -> bytes:
    out = b"" if context is None else ld(1, features(context))
    return out + (b"" if lists is None else ld(2, features({k: feature_list(v) for k, v in lists.items()})))


# ---------------------------------------------------------------------------- feature descriptions


class Desc(NamedTuple):
    """A feature description for both sides: the class name, its shape (or None), dtype name, keywords."""

    kind: str
    shape: Any
    dtype: str
    kwargs: dict


def Fixed(shape: Any, dtype: str, **kwargs: Any) -> Desc:
    return Desc("FixedLenFeature", shape, dtype, kwargs)


def Var(dtype: str) -> Desc:
    return Desc("VarLenFeature", None, dtype, {})


def Seq(shape: Any, dtype: str, **kwargs: Any) -> Desc:
    return Desc("FixedLenSequenceFeature", shape, dtype, kwargs)


def single(serialized: bytes, feats: dict, **kwargs: Any) -> tuple:
    return "parse_single_example", dict(serialized=serialized, features=feats, **kwargs)


def batch(serialized: list, feats: dict, **kwargs: Any) -> tuple:
    return "parse_example", dict(serialized=list(serialized), features=feats, **kwargs)


def sequence(serialized: bytes, context: Optional[dict] = None, lists: Optional[dict] = None, **kwargs: Any) -> tuple:
    return "parse_single_sequence_example", dict(serialized=serialized, context_features=context,
                                                 sequence_features=lists, **kwargs)


def _build(descs: Optional[dict], make: Any) -> Optional[dict]:
    return None if descs is None else {k: make(d) if isinstance(d, Desc) else d for k, d in descs.items()}


def _call(ns: Any, step: tuple, make: Any, serialized: Any) -> Any:
    op, kwargs = step
    kwargs = dict(kwargs, serialized=serialized)
    for name in ("features", "context_features", "sequence_features"):
        if name in kwargs:
            kwargs[name] = _build(kwargs[name], make)
    return getattr(ns, op)(**kwargs)


def _shape_args(desc: Desc) -> tuple:
    return () if desc.kind == "VarLenFeature" else (desc.shape,)


class Parse:
    """Runs ``steps()`` (a list of ``single``/``batch``/``sequence`` calls) on either side."""

    def steps(self) -> list:  # pragma: no cover - always overridden
        raise NotImplementedError

    def tf(self, tf, rec):
        def make(desc):
            return getattr(tf, desc.kind)(*_shape_args(desc), getattr(tf, desc.dtype), **desc.kwargs)

        for step in self.steps():
            serialized = step[1]["serialized"]
            if step[0] == "parse_example":
                serialized = tf.constant(serialized, dtype=tf.string, shape=[len(serialized)])
            rec.run(lambda: _call(tf, step, make, serialized))

    def lo(self, lo, rec):
        import torch

        dtypes = {"int64": torch.int64, "float32": torch.float32, "string": lo.string,
                  "float64": torch.float64, "int32": torch.int32}

        def make(desc):
            return getattr(lo, desc.kind)(*_shape_args(desc), dtypes[desc.dtype], **desc.kwargs)

        for step in self.steps():
            rec.run(lambda: _as_tf(step, _call(lo, step, make, step[1]["serialized"])))


# ---------------------------------------------------------------------------- loaders' values in TF's form


def _as_tf(step: tuple, result: Any) -> Any:
    """loaders' result as TF's: VarLenFeatures as (indices, values, dense_shape), strings as object arrays."""
    op, kwargs = step
    if op == "parse_single_sequence_example":
        context, lists = result
        return _convert(kwargs["context_features"], context, 0, 0), _convert(kwargs["sequence_features"], lists, 1, 0)
    batched = int(op == "parse_example")
    return _convert(kwargs["features"], result, batched, batched)


def _convert(descs: Optional[dict], values: dict, rows: int, records: int) -> dict:
    """``rows``: each value holds one entry per record or per step (a batch or a feature list);
    ``records``: one per record (a batch), before a FixedLenSequenceFeature's steps."""
    out = {}
    for name, value in values.items():
        desc = (descs or {}).get(name)
        if not isinstance(desc, Desc):
            out[name] = value
        elif desc.kind == "VarLenFeature":
            out[name] = _sparse(value, bool(rows), desc.dtype)
        elif desc.dtype == "string":
            shape = [] if desc.shape is None else [desc.shape] if isinstance(desc.shape, int) else list(desc.shape)
            steps = desc.kind == "FixedLenSequenceFeature"
            out[name] = _strings(value, [None] * (records + steps or rows) + shape)
        else:
            out[name] = value
    return out


def _flat(value: Any) -> list:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [item for part in value for item in _flat(part)]
    return [value]


def _sparse(value: Any, rows: bool, dtype: str) -> tuple:
    import numpy as np

    lines = [_flat(line) for line in value] if rows else [_flat(value)]
    values = [item for line in lines for item in line]
    kind = {"int64": np.int64, "float32": np.float32, "string": object}[dtype]
    array = np.empty(len(values), kind)
    array[:] = values
    if rows:
        indices = [[r, i] for r, line in enumerate(lines) for i in range(len(line))]
        shape = [len(lines), max([len(line) for line in lines], default=0)]
    else:
        indices, shape = [[i] for i in range(len(values))], [len(values)]
    return np.array(indices, np.int64).reshape(-1, len(shape)), array, np.array(shape, np.int64)


def _strings(value: Any, dims: list) -> Any:
    """A nest of bytes (``dims``: the expected dimensions, None where data decides) as an object array."""
    import numpy as np

    if not dims:
        return value

    def shape_of(item: Any, rest: list) -> list:
        if not rest:
            return []
        if isinstance(item, list) and item:
            return [len(item)] + shape_of(item[0], rest[1:])
        return [len(item) if isinstance(item, list) else 0] + [d or 0 for d in rest[1:]]

    shape = shape_of(value, dims)
    flat = _flat(value)
    array = np.empty(len(flat), object)
    array[:] = flat
    return array.reshape(shape)


# ---------------------------------------------------------------------------- ParseExampleTest

B_DEFAULT = [[b"b00", b"b01", b"b02"], [b"b10", b"b11", b"b12"], [b"b20", b"b21", b"b22"]]
C_DEFAULT = [0.25, -0.75]


class testEmptySerializedWithAllDefaults(Parse, Scenario):
    def steps(self):
        feats = {"st_a": Var("int64"), "a": Fixed((1, 3), "int64", default_value=[0, 42, 0]),
                 "b": Fixed((3, 3), "string", default_value=B_DEFAULT),
                 "c:has_a_tricky_name": Fixed((2,), "float32", default_value=C_DEFAULT)}
        return [batch([b"", b""], feats, example_names=[])]


class testEmptySerializedWithoutDefaultsShouldFail(Parse, Scenario):
    cases = ["key there, value empty", "key missing"]

    def steps(self):
        feats = {"st_a": Var("int64"), "a": Fixed((1, 3), "int64", default_value=[0, 42, 0]),
                 "b": Fixed((3, 3), "string", default_value=B_DEFAULT), "c": Fixed((2,), "float32")}
        if self.case == "key there, value empty":
            return [batch([example({"c": feature()})], feats, example_names=["in1"])]
        return [batch([b"", b""], feats, example_names=["in1", "in2"])]


class testDenseNotMatchingShapeShouldFail(Parse, Scenario):
    def steps(self):
        serialized = [example({"a": float_feature([1, 1, 3])}), example({"a": float_feature([-1, -1])})]
        return [batch(serialized, {"a": Fixed((1, 3), "float32")}, example_names=["passing", "failing"])]


class testDenseDefaultNoShapeShouldFail(Parse, Scenario):
    def steps(self):
        return [batch([example({"a": float_feature([1, 1, 3])})], {"a": Fixed(None, "float32")},
                      example_names=["failing"])]


class testSerializedContainingSparse(Parse, Scenario):
    def steps(self):
        serialized = [
            example({"st_c": float_feature([3, 4])}),
            example({"st_c": float_feature([])}),
            example({"st_d": feature()}),
            example({"st_c": float_feature([1, 2, -1]), "st_d": bytes_feature([b"hi"])}),
        ]
        return [batch(serialized, {"st_c": Var("float32"), "st_d": Var("string")})]


DENSE_FEATURES = {"a": Fixed((1, 2, 1), "float32"), "b*has+a:tricky_name": Fixed((1, 1, 1, 1), "string")}


class testSerializedContainingDense(Parse, Scenario):
    def steps(self):
        serialized = [
            example({"a": float_feature([1, 1]), "b*has+a:tricky_name": bytes_feature([b"b0_str"])}),
            example({"a": float_feature([-1, -1]), "b*has+a:tricky_name": bytes_feature([b""])}),
        ]
        return [batch(serialized, DENSE_FEATURES)]


class testSerializedContainingDenseWithConcat(Parse, Scenario):
    def steps(self):
        b = "b*has+a:tricky_name"
        serialized = [
            example({"a": float_feature([10, 10])}) + example({"a": float_feature([1, 1]), b: bytes_feature([b"b0_str"])}),
            example({b: bytes_feature([b"b100"])}) + example({"a": float_feature([-1, -1]), b: bytes_feature([b"b1"])}),
        ]
        return [batch(serialized, DENSE_FEATURES)]


class testSerializedContainingDenseScalar(Parse, Scenario):
    def steps(self):
        serialized = [example({"a": float_feature([1])}), example({})]
        return [batch(serialized, {"a": Fixed((1,), "float32", default_value=-1)})]


class testSerializedContainingDenseWithDefaults(Parse, Scenario):
    def steps(self):
        serialized = [example({"a": float_feature([1, 1])}), example({"b": bytes_feature([b"b1"])}),
                      example({"b": feature()})]
        return [batch(serialized, {"a": Fixed((1, 2, 1), "float32", default_value=[3.0, -3.0]),
                                   "b": Fixed((1, 1, 1, 1), "string", default_value="tmp_str")})]


class testSerializedContainingSparseAndSparseFeatureAndDenseWithNoDefault(Parse, Scenario):
    """Without its SparseFeature "sp" (loaders has none)."""

    def steps(self):
        serialized = [
            example({"c": float_feature([3, 4]), "val": bytes_feature([b"a", b"b"]), "idx": int64_feature([0, 3])}),
            example({"c": float_feature([1, 2]), "val": bytes_feature([b"c"]), "idx": int64_feature([7])}),
        ]
        feats = {"st_a": Var("int64"), "a": Fixed((1, 3), "int64", default_value=[1, 2, 3]),
                 "b": Fixed((3, 3), "string", default_value=B_DEFAULT), "c": Fixed((2,), "float32")}
        return [batch(serialized, feats, example_names=["in1", "in2"])]


class testSerializedContainingVarLenDenseLargerBatch(Parse, Scenario):
    cases = [1, 10, 20, 100, 256]

    def steps(self):
        rng = random.Random(3456 + self.case)
        truth_str = [[f"foo{i}".encode(), f"bar{i}".encode()] for i in range(self.case)]
        for i in range(1, self.case):  # drop some second (and first) entries, as TF's test does
            for _ in range(2):
                if rng.random() < 0.25 and truth_str[i]:
                    truth_str[i].pop()
        serialized = [example({"a": int64_feature([i]), "b": bytes_feature(truth_str[i])}) for i in range(self.case)]
        feats = {"a": Seq((), "int64", allow_missing=True, default_value=-1),
                 "b": Seq([], "string", allow_missing=True, default_value="default")}
        return [batch(serialized, feats)]


VAR_LEN_DENSE = [
    example({"c": int64_feature([2])}),
    example({"a": float_feature([1, 1]), "b": bytes_feature([b"b0_str", b"b1_str"])}),
    example({"a": float_feature([-1, -1, 2, 2]), "b": bytes_feature([b"b1"])}),
    example({"a": float_feature([]), "c": int64_feature([3])}),
]


class testSerializedContainingVarLenDense(Parse, Scenario):
    cases = ["no padding value", "padding -2.0", "not a multiple of the stride", "empty default",
             "FixedLenFeature with unknown first dimension", "FixedLenFeature with unknown inner dimension",
             "allow_missing=False"]

    def steps(self):
        a = Seq((2, 1), "float32", allow_missing=True)
        b = Seq((1, 1, 1), "string", allow_missing=True)
        c = Seq([], "int64", allow_missing=True)
        d = Seq([], "string", allow_missing=True)
        b2 = Seq((2, 1, 1), "string", allow_missing=True)
        feats = {
            "no padding value": {"a": a, "b": b, "c": c, "d": d},
            "padding -2.0": {"a": Seq((2, 1), "float32", allow_missing=True, default_value=-2.0), "b": b, "c": c, "d": d},
            "not a multiple of the stride": {"a": a, "b": b2},
            "empty default": {"a": Seq((2, 1), "float32", allow_missing=True, default_value=[]), "b": b2},
            "FixedLenFeature with unknown first dimension": {"a": Fixed((None, 2, 1), "float32"), "b": b2},
            "FixedLenFeature with unknown inner dimension": {"c": Fixed((1, None), "int64", default_value=[[1]])},
            "allow_missing=False": {"a": a, "b": b, "c": Seq([], "int64", allow_missing=False), "d": d},
        }[self.case]
        return [batch(VAR_LEN_DENSE, feats, example_names=["in1", "in2", "in3", "in4"])]


# ---------------------------------------------------------------------------- ParseSingleExampleTest


class testSingleExampleWithSparseAndSparseFeatureAndDense(Parse, Scenario):
    """Without its SparseFeature "sp"; with and without example_names (TF's two code paths)."""

    cases = ["in1", None]

    def steps(self):
        serialized = example({"c": float_feature([3, 4]), "d": float_feature([0.0, 1.0]),
                              "val": bytes_feature([b"a", b"b"]), "idx": int64_feature([0, 3]),
                              "st_a": float_feature([3.0, 4.0])})
        feats = {"st_a": Var("float32"), "a": Fixed((1, 3), "int64", default_value=[1, 2, 3]),
                 "b": Fixed((3, 3), "string", default_value=B_DEFAULT), "c": Fixed(2, "float32"),
                 "d": Seq([], "float32", allow_missing=True)}
        return [single(serialized, feats, example_names=self.case)]


# ---------------------------------------------------------------------------- ParseSequenceExampleTest


class testSequenceExampleWithSparseAndDenseContext(Parse, Scenario):
    def steps(self):
        serialized = sequence_example(context={"c": float_feature([3, 4]), "st_a": float_feature([3.0, 4.0])})
        context = {"st_a": Var("float32"), "a": Fixed((1, 3), "int64", default_value=[[1, 2, 3]]),
                   "b": Fixed((3, 3), "string", default_value=B_DEFAULT), "c": Fixed((2,), "float32")}
        return [sequence(serialized, context=context, example_name="in1")]


class testSequenceExampleWithMultipleSizeFeatureLists(Parse, Scenario):
    def steps(self):
        serialized = sequence_example(lists={
            "a": [int64_feature([-1, 0, 1]), int64_feature([2, 3, 4]), int64_feature([5, 6, 7]), int64_feature([8, 9, 10])],
            "b": [bytes_feature([b"r00", b"r01", b"r10", b"r11"])],
            "c": [float_feature([3, 4]), float_feature([-1, 2])],
        })
        lists = {"a": Seq((1, 3), "int64"), "b": Seq((2, 2), "string"), "c": Seq(2, "float32"),
                 "d": Seq((5,), "float32", allow_missing=True)}
        return [sequence(serialized, lists=lists, example_name="in1")]


SPARSE_AND_DENSE_LISTS = {
    "a": [int64_feature([3, 4]), int64_feature([1, 0])],
    "st_a": [float_feature([3.0, 4.0]), float_feature([5.0]), float_feature([])],
    "st_b": [bytes_feature([b"a"]), bytes_feature([]), bytes_feature([]), bytes_feature([b"b", b"c"])],
}
SPARSE_AND_DENSE_SPECS = {"st_a": Var("float32"), "st_b": Var("string"), "st_c": Var("int64"), "a": Seq((2,), "int64")}


class testSequenceExampleWithoutDebugName(Parse, Scenario):
    def steps(self):
        return [sequence(sequence_example(lists=SPARSE_AND_DENSE_LISTS), lists=SPARSE_AND_DENSE_SPECS)]


class testSequenceExampleWithSparseAndDenseFeatureLists(Parse, Scenario):
    def steps(self):
        return [sequence(sequence_example(lists=SPARSE_AND_DENSE_LISTS), lists=SPARSE_AND_DENSE_SPECS,
                         example_name="in1")]


class testSequenceExampleWithEmptyFeatureInFeatureLists(Parse, Scenario):
    def steps(self):
        serialized = sequence_example(lists={"st_a": [float_feature([3.0, 4.0]), feature(), float_feature([5.0])]})
        return [sequence(serialized, lists={"st_a": Var("float32")}, example_name="in1")]


class testSequenceExampleListWithInconsistentDataFails(Parse, Scenario):
    def steps(self):
        serialized = sequence_example(lists={"a": [int64_feature([-1, 0]), float_feature([2, 3])]})
        return [sequence(serialized, lists={"a": Seq((2,), "int64")}, example_name="in1")]


class testSequenceExampleListWithWrongDataTypeFails(Parse, Scenario):
    def steps(self):
        serialized = sequence_example(lists={"a": [float_feature([2, 3])]})
        return [sequence(serialized, lists={"a": Seq((2,), "int64")}, example_name="in1")]


class testSequenceExampleListWithWrongSparseDataTypeFails(Parse, Scenario):
    def steps(self):
        serialized = sequence_example(lists={"a": [int64_feature([3, 4]), int64_feature([1, 2]), float_feature([2.0, 3.0])]})
        return [sequence(serialized, lists={"a": Seq((2,), "int64")}, example_name="in1")]


class testSequenceExampleListWithWrongShapeFails(Parse, Scenario):
    def steps(self):
        serialized = sequence_example(lists={"a": [int64_feature([2, 3]), int64_feature([2, 3, 4])]})
        return [sequence(serialized, lists={"a": Seq((2,), "int64")}, example_name="in1")]


class testSequenceExampleListWithWrongShapeFails2(Parse, Scenario):
    def steps(self):
        serialized = sequence_example(lists={"a": [int64_feature([2]), int64_feature([2, 3, 4])]})
        return [sequence(serialized, lists={"a": Seq((2,), "int64")}, example_name="in1")]


class testSequenceExampleWithMissingFeatureListFails(Parse, Scenario):
    def steps(self):
        return [sequence(sequence_example(lists={}), lists={"a": Seq((2,), "int64")}, example_name="in1")]


# ---------------------------------------------------------------------------- edge cases: the wire format

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
X_INT = {"x": Fixed([], "int64")}


def _x(feature_bytes: bytes) -> bytes:
    return example({"x": feature_bytes})


def _int64_list(body: bytes) -> bytes:
    """An Example whose feature "x" is an Int64List with this raw body."""
    return _x(ld(3, body))


WIRE_CASES = [
    ("10-byte varint with bits above bit 63 (wraps, like protobuf)", _int64_list(ld(1, b"\xff" * 9 + b"\x7f")), X_INT),
    ("10-byte varint -1", _int64_list(ld(1, varint(-1))), X_INT),
    ("10-byte varint INT64_MIN", _int64_list(ld(1, varint(INT64_MIN))), X_INT),
    ("11-byte varint", _int64_list(ld(1, b"\xff" * 10 + b"\x01")), X_INT),
    ("10-byte varint whose last byte continues", _int64_list(ld(1, b"\xff" * 10)), X_INT),
    ("two 10-byte varints with high bits (the vectorized path)", _int64_list(ld(1, (b"\xff" * 9 + b"\x7f") * 2 + varint(5))),
     {"x": Fixed([3], "int64")}),
    ("varint boundaries", _x(int64_feature([0, 1, 127, 128, 16383, 16384, 1 << 31, 1 << 32, INT64_MAX, INT64_MIN, -1])),
     {"x": Fixed([11], "int64")}),
    ("unpacked int64 values", _x(int64_feature([1, -2, 300], packed=False)), {"x": Var("int64")}),
    ("packed and unpacked int64 runs mixed", _int64_list(ld(1, varint(1) + varint(2)) + key(1, 0) + varint(3) + ld(1, varint(4))),
     {"x": Fixed([4], "int64")}),
    ("unpacked floats", _x(float_feature([1.5, -2.0, 3.25], packed=False)), {"x": Var("float32")}),
    ("packed floats in two runs", _x(ld(2, ld(1, struct.pack("<2f", 1, 2)) + ld(1, struct.pack("<f", 3)))),
     {"x": Fixed([3], "float32")}),
    ("packed floats of 5 bytes", _x(ld(2, ld(1, b"\x00" * 5))), {"x": Var("float32")}),
    ("special floats", _x(float_feature([float("nan"), float("inf"), float("-inf"), -0.0, 1e-45])),
     {"x": Fixed([5], "float32")}),
    ("unterminated varint at the end of a packed run", _int64_list(ld(1, varint(1) + b"\x80")), {"x": Var("int64")}),
    ("unknown varint field in Example", key(5, 0) + varint(7) + _x(int64_feature([4])), X_INT),
    ("unknown field in Features", ld(1, ld(9, b"junk") + features({"x": int64_feature([4])})), X_INT),
    ("unknown field in a map entry", ld(1, ld(1, ld(1, b"x") + key(3, 0) + varint(1) + ld(2, int64_feature([4])))), X_INT),
    ("unknown field in Feature", _x(ld(7, b"zz") + int64_feature([4])), X_INT),
    ("unknown fields in Int64List", _int64_list(key(2, 0) + varint(9) + ld(1, varint(4)) + key(3, 1) + b"\x00" * 8),
     X_INT),
    ("unknown fields in FloatList", _x(ld(2, key(2, 5) + b"\x00" * 4 + ld(1, struct.pack("<f", 2.5)))),
     {"x": Fixed([], "float32")}),
    ("unknown fields in BytesList", _x(ld(1, ld(2, b"skip") + ld(1, b"kept"))), {"x": Fixed([], "string")}),
    ("unknown group field in Example", key(6, 3) + key(1, 0) + varint(1) + key(6, 4) + _x(int64_feature([4])), X_INT),
    ("duplicate keys: the last wins", ld(1, entry("x", int64_feature([1])) + entry("x", int64_feature([2]))), X_INT),
    ("duplicate keys of different types: the last wins",
     ld(1, entry("x", float_feature([1.0])) + entry("x", int64_feature([2]))), X_INT),
    ("duplicate keys, the last one empty", ld(1, entry("x", int64_feature([1])) + entry("x", feature())),
     {"x": Fixed([], "int64", default_value=9)}),
    ("map entry with its value before its key", ld(1, ld(1, ld(2, int64_feature([4])) + ld(1, b"x"))), X_INT),
    ("map entry without a value", ld(1, ld(1, ld(1, b"x"))), {"x": Fixed([], "int64", default_value=9)}),
    ("map entry without a key", ld(1, ld(1, ld(2, int64_feature([4])))), {"": Fixed([], "int64")}),
    ("Feature with two kinds: the last wins", _x(float_feature([1.0]) + int64_feature([4])), X_INT),
    ("Feature with its int64_list twice: merged", _x(int64_feature([1]) + int64_feature([2])), {"x": Var("int64")}),
    ("Example with its features field twice: merged", example({"x": int64_feature([1])}) + example({"y": int64_feature([2])}),
     {"x": Fixed([], "int64"), "y": Fixed([], "int64")}),
    ("empty message", b"", {"x": Fixed([2], "int64", default_value=[5, 6]), "v": Var("string")}),
    ("empty Features", ld(1, b""), {"x": Fixed([2], "int64", default_value=[5, 6]), "v": Var("float32")}),
    ("truncated message", _x(int64_feature([1, 2, 3]))[:-2], {"x": Var("int64")}),
    ("length past the end", ld(1, b"")[:1] + varint(50) + b"\x00" * 10, X_INT),
    ("wire type 6", key(1, 6) + b"\x00", X_INT),
    ("field number 0", key(0, 0) + varint(1) + _x(int64_feature([4])), X_INT),
    ("Example.features as a varint", key(1, 0) + varint(3), {"x": Fixed([], "int64", default_value=9)}),
    ("Feature.int64_list as a varint", _x(key(3, 0) + varint(3)), {"x": Fixed([], "int64", default_value=9)}),
    ("a key that is not UTF-8", ld(1, entry(b"\xff\xfe", int64_feature([4]))), {"x": Fixed([], "int64", default_value=9)}),
    ("bytes values: empty, binary, not UTF-8", _x(bytes_feature([b"", bytes(range(256)), b"\xff\xfe"])),
     {"x": Fixed([3], "string")}),
    ("unknown length-delimited field inside Int64List", _int64_list(ld(4, b"\xff\xff\xff") + ld(1, varint(4))), X_INT),
]


class testWireFormat(Parse, Scenario):
    """Hand-made wire layouts: TF's parser decides what each means."""

    cases = WIRE_CASES

    def steps(self):
        _, serialized, feats = self.case
        return [single(serialized, feats)]


# ---------------------------------------------------------------------------- edge cases: descriptions and data

GOOD = example({"ints": int64_feature([1, 2, 3]), "floats": float_feature([1.5]), "name": bytes_feature([b"ab"])})

ERROR_CASES = [
    ("int64 values for a float32 feature", {"ints": Fixed([3], "float32")}),
    ("float values for an int64 feature", {"floats": Fixed([1], "int64")}),
    ("bytes values for a float32 feature", {"name": Fixed([], "float32")}),
    ("int64 values for a string VarLenFeature", {"ints": Var("string")}),
    ("too many values", {"ints": Fixed([2], "int64")}),
    ("too few values", {"ints": Fixed([2, 2], "int64")}),
    ("missing required", {"absent": Fixed([], "int64")}),
    ("FixedLenSequenceFeature: values not a multiple of the shape", {"ints": Seq([2], "int64", allow_missing=True)}),
    ("FixedLenSequenceFeature: a multiple of the shape", {"ints": Seq([3], "int64", allow_missing=True),
                                                          "absent": Seq([2], "float32", allow_missing=True)}),
    ("FixedLenSequenceFeature without allow_missing", {"ints": Seq([], "int64")}),
    ("unsupported dtype float64", {"floats": Fixed([1], "float64")}),
    ("unsupported dtype int32", {"ints": Var("int32")}),
    ("not a feature description", {"ints": 3}),
    ("no features", {}),
    ("negative dimension", {"ints": Fixed([-1], "int64")}),
    ("shape None", {"ints": Fixed(None, "int64")}),
    ("default of the wrong size", {"absent": Fixed([2], "int64", default_value=[1, 2, 3])}),
    ("scalar default for a vector", {"absent": Fixed([2], "float32", default_value=7.0)}),
    ("FixedLenSequenceFeature default not a scalar", {"absent": Seq([2], "float32", allow_missing=True, default_value=[1.0, 2.0])}),
    ("FixedLenSequenceFeature default of one value", {"ints": Seq([], "int64", allow_missing=True, default_value=[7])}),
    ("zero-size FixedLenFeature missing", {"absent": Fixed([0], "float32")}),
    ("zero-size FixedLenFeature with an empty default", {"absent": Fixed([2, 0], "float32", default_value=[])}),
    ("string default", {"absent": Fixed([2], "string", default_value=["p", b"q"])}),
    ("list shapes and tuple shapes", {"ints": Fixed([3], "int64"), "floats": Fixed((1,), "float32"), "name": Fixed((), "string")}),
    ("int shape", {"ints": Fixed(3, "int64"), "floats": Fixed(1, "float32")}),
]


class testFeatureDescriptions(Parse, Scenario):
    """TF's checks on a description and on the data it meets, one parse_single_example each."""

    cases = ERROR_CASES

    def steps(self):
        return [single(GOOD, self.case[1])]


BATCH_CASES = [
    ("empty batch", [], {"a": Fixed([2], "float32"), "v": Var("int64"), "s": Seq([], "string", allow_missing=True),
                         "n": Seq([2], "int64", allow_missing=True), "t": Fixed([], "string")}),
    ("one malformed record", [example({"a": int64_feature([1])}), b"\x0a\x05\x0a"], {"a": Fixed([], "int64")}),
    ("second record of the wrong type", [example({"a": int64_feature([1])}), example({"a": float_feature([1.0])})],
     {"a": Fixed([], "int64")}),
    ("missing in one record, default in the others", [example({"s": bytes_feature([b"x"])}), example({})],
     {"s": Fixed([], "string", default_value=b"dflt"), "n": Fixed([1], "int64", default_value=[-7])}),
    ("FixedLenSequenceFeature padded with its scalar default", [example({"n": int64_feature([1, 2, 3, 4])}),
                                                                example({"n": int64_feature([5, 6])}), example({})],
     {"n": Seq([2], "int64", allow_missing=True, default_value=-1),
      "f": Seq([], "float32", allow_missing=True, default_value=0.5)}),
    ("VarLenFeature of strings across records", [example({"v": bytes_feature([b"a", b"b"])}), example({}),
                                                 example({"v": bytes_feature([b"c"])})], {"v": Var("string")}),
]


class testParseExampleBatches(Parse, Scenario):
    cases = BATCH_CASES

    def steps(self):
        _, serialized, feats = self.case
        return [batch(serialized, feats)]


SEQ_GOOD = sequence_example(context={"len": int64_feature([2])},
                            lists={"f": [float_feature([1, 2]), float_feature([3, 4])], "s": [bytes_feature([b"a"])],
                                   "e": []})

SEQUENCE_CASES = [
    ("missing required context", {"absent": Fixed([], "int64")}, {"f": Seq([2], "float32")}, SEQ_GOOD),
    ("context default", {"absent": Fixed([], "int64", default_value=4), "len": Fixed([], "int64")}, None, SEQ_GOOD),
    ("an empty feature list", None, {"e": Seq([2], "float32")}, SEQ_GOOD),
    ("an empty feature list as VarLenFeature", None, {"e": Var("int64")}, SEQ_GOOD),
    ("a step of the wrong type for a VarLenFeature", None, {"f": Var("int64")}, SEQ_GOOD),
    ("FixedLenFeature as a sequence feature", None, {"f": Fixed([2], "float32")}, SEQ_GOOD),
    ("FixedLenSequenceFeature as a context feature", {"len": Seq([], "int64", allow_missing=True)}, None, SEQ_GOOD),
    ("malformed", {"len": Fixed([], "int64")}, None, b"\x12\x07\x0a"),
    ("duplicate feature list keys: the last wins", None, {"f": Seq([], "int64")},
     ld(2, entry("f", feature_list([int64_feature([1])])) + entry("f", feature_list([int64_feature([2]), int64_feature([3])])))),
    ("unknown fields", {"len": Fixed([], "int64")}, {"f": Seq([1], "int64")},
     key(4, 0) + varint(1) + ld(1, ld(3, b"?") + entry("len", int64_feature([2])))
     + ld(2, entry("f", ld(2, b"?") + feature_list([int64_feature([5])])))),
    ("context merged from two messages", {"a": Fixed([], "int64"), "b": Fixed([], "int64")}, None,
     sequence_example(context={"a": int64_feature([1])}) + sequence_example(context={"b": int64_feature([2])})),
    ("string steps", None, {"s": Seq([], "string"), "t": Seq([2], "string", allow_missing=True)}, SEQ_GOOD),
]


class testParseSingleSequenceExample(Parse, Scenario):
    cases = SEQUENCE_CASES

    def steps(self):
        _, context, lists, serialized = self.case
        return [sequence(serialized, context=context, lists=lists, example_name="seq")]


class testWithoutFeatureDescriptions(Parse, Scenario):
    """loaders decodes every feature when no description is given; TF requires one."""

    differs = "with no feature description loaders returns every feature; TensorFlow requires a description"
    cases = ["parse_single_example", "parse_single_sequence_example"]

    def steps(self):
        if self.case == "parse_single_example":
            return [single(GOOD, None)]
        return [sequence(SEQ_GOOD)]
