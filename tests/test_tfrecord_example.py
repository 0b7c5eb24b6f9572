"""tf.train.Example / SequenceExample: round trips of every feature type, TF's checks, golden bytes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from loaders.errors import InvalidArgumentError
from loaders.tfrecord import (
    ExampleDecoder, FixedLenFeature, FixedLenSequenceFeature, VarLenFeature, encode_example,
    encode_sequence_example, parse_example, parse_single_example, parse_single_sequence_example,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Serialized by TensorFlow 2.21: tf.train.Example(features=tf.train.Features(feature={
#   "label": Int64List([7]), "shape": Int64List([2, 2, 1]), "image": BytesList([b"\0\1\xfe\xff"]),
#   "mean": FloatList([0.5, -1.25])})).SerializeToString()   (TF's own map order)
TF_EXAMPLE = (
    b"\nK\n\x11\n\x05image\x12\x08\n\x06\n\x04\x00\x01\xfe\xff\n\x10\n\x05shape\x12\x07\x1a\x05\n\x03\x02\x02\x01"
    b"\n\x14\n\x04mean\x12\x0c\x12\n\n\x08\x00\x00\x00?\x00\x00\xa0\xbf\n\x0e\n\x05label\x12\x05\x1a\x03\n\x01\x07"
)
# The same Example from TF's SerializeToString(deterministic=True): map keys sorted.
TF_EXAMPLE_SORTED = (
    b"\nK\n\x11\n\x05image\x12\x08\n\x06\n\x04\x00\x01\xfe\xff\n\x0e\n\x05label\x12\x05\x1a\x03\n\x01\x07"
    b"\n\x14\n\x04mean\x12\x0c\x12\n\n\x08\x00\x00\x00?\x00\x00\xa0\xbf\n\x10\n\x05shape\x12\x07\x1a\x05\n\x03\x02\x02\x01"
)
LECTURE = {
    "label": FixedLenFeature([], torch.int64),
    "shape": FixedLenFeature([3], "int64"),
    "image": FixedLenFeature([], "string"),
    "mean": VarLenFeature(torch.float32),
}


def test_parses_tensorflow_bytes_with_the_lecture_description():
    parsed = parse_single_example(TF_EXAMPLE, LECTURE)
    assert parsed["label"].dtype == torch.int64 and parsed["label"].shape == () and parsed["label"].item() == 7
    assert parsed["shape"].tolist() == [2, 2, 1]
    assert parsed["image"] == b"\x00\x01\xfe\xff"
    assert parsed["mean"].dtype == torch.float32 and parsed["mean"].tolist() == [0.5, -1.25]


def test_encoding_equals_tensorflow_deterministic_bytes():
    encoded = encode_example({"label": 7, "shape": np.array([2, 2, 1]), "image": b"\x00\x01\xfe\xff", "mean": [0.5, -1.25]})
    assert encoded == TF_EXAMPLE_SORTED


def test_no_description_returns_every_feature():
    parsed = parse_single_example(TF_EXAMPLE)
    assert set(parsed) == {"label", "shape", "image", "mean"}
    assert parsed["image"] == [b"\x00\x01\xfe\xff"]
    assert parsed["shape"].tolist() == [2, 2, 1]


def test_round_trip_of_every_feature_type():
    record = encode_example({
        "extremes": [INT64_MIN, -1, 0, 1, INT64_MAX],
        "uint": np.array([2**63 - 1], dtype=np.uint64),
        "bools": torch.tensor([True, False]),
        "floats": torch.arange(6, dtype=torch.float64).reshape(2, 3),
        "text": "grüße, 世界",
        "binary": [bytes(range(256)), b"", b"\x00\x00"],
        "empty_floats": np.zeros(0, np.float32),
        "empty_ints": torch.zeros(0, dtype=torch.int64),
        "empty": [],
        "scalar": np.float32(2.5),
    })
    parsed = parse_single_example(record, {
        "extremes": FixedLenFeature([5], torch.int64),
        "uint": FixedLenFeature([], torch.int64),
        "bools": VarLenFeature(torch.int64),
        "floats": FixedLenFeature([2, 3], torch.float32),
        "text": FixedLenFeature([], "string"),
        "binary": VarLenFeature("string"),
        "empty_floats": VarLenFeature(torch.float32),
        "empty_ints": FixedLenFeature([0], torch.int64),
        "empty": VarLenFeature("string"),
        "scalar": FixedLenFeature([], torch.float32),
    })
    assert parsed["extremes"].tolist() == [INT64_MIN, -1, 0, 1, INT64_MAX]
    assert parsed["uint"].item() == 2**63 - 1
    assert parsed["bools"].tolist() == [1, 0]
    assert torch.equal(parsed["floats"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    assert parsed["text"].decode() == "grüße, 世界"
    assert parsed["binary"] == [bytes(range(256)), b"", b"\x00\x00"]
    assert parsed["empty_floats"].shape == (0,) and parsed["empty_floats"].dtype == torch.float32
    assert parsed["empty_ints"].shape == (0,)
    assert parsed["empty"] == []
    assert parsed["scalar"].item() == 2.5


def test_string_shapes_nest_like_tensors():
    record = encode_example({"grid": [b"a", b"b", b"c", b"d", b"e", b"f"]})
    assert parse_single_example(record, {"grid": FixedLenFeature([2, 3], "string")})["grid"] == [
        [b"a", b"b", b"c"], [b"d", b"e", b"f"]]


def test_defaults_and_required_features():
    record = encode_example({"present": 1, "no_values": []})
    parsed = parse_single_example(record, {
        "missing": FixedLenFeature([2], torch.float32, default_value=[1.0, 2.0]),
        "no_values": FixedLenFeature([], torch.int64, default_value=7),  # TF: an empty Feature is missing
        "name": FixedLenFeature([], "string", default_value="none"),
    })
    assert parsed["missing"].tolist() == [1.0, 2.0] and parsed["no_values"].item() == 7 and parsed["name"] == b"none"
    with pytest.raises(InvalidArgumentError, match=r"feature 'label' \(int64\): is required but could not be found"):
        parse_single_example(record, {"label": FixedLenFeature([], torch.int64)})
    with pytest.raises(InvalidArgumentError, match="default_value has 1 values, expected 2"):
        parse_single_example(record, {"x": FixedLenFeature([2], torch.float32, default_value=1.0)})


def test_tensorflow_checks_on_types_and_counts():
    record = encode_example({"ints": [1, 2, 3], "floats": [1.5]})
    with pytest.raises(InvalidArgumentError, match=r"'ints' \(float32\): data types don't match: found int64 values"):
        parse_single_example(record, {"ints": FixedLenFeature([3], torch.float32)})
    with pytest.raises(InvalidArgumentError, match="expected 2 values for shape \\(2,\\), found 3"):
        parse_single_example(record, {"ints": FixedLenFeature([2], torch.int64)})
    with pytest.raises(TypeError, match="unsupported dtype float64"):  # TF raises TypeError too
        parse_single_example(record, {"floats": FixedLenFeature([1], torch.float64)})
    with pytest.raises(InvalidArgumentError, match="requires allow_missing=True"):
        parse_single_example(record, {"ints": FixedLenSequenceFeature([], torch.int64)})
    with pytest.raises(InvalidArgumentError, match="divisible by 2, found 3"):
        parse_single_example(record, {"ints": FixedLenSequenceFeature([2], torch.int64, allow_missing=True)})
    rows = parse_single_example(encode_example({"ints": [1, 2, 3, 4]}), {
        "ints": FixedLenSequenceFeature([2], torch.int64, allow_missing=True),
        "gone": FixedLenSequenceFeature([2], torch.int64, allow_missing=True),
    })
    assert rows["ints"].tolist() == [[1, 2], [3, 4]] and rows["gone"].shape == (0, 2)


def test_malformed_bytes_raise_invalid_argument():
    for bad in (b"\xff\xff\xff", TF_EXAMPLE[:-3], b"\x0a\x05\x0a\x03"):
        with pytest.raises(InvalidArgumentError, match="could not parse a serialized Example"):
            parse_single_example(bad, LECTURE)


def test_non_canonical_encodings_decode_like_protobuf():
    from loaders.tfrecord import protos

    example = protos.Example()
    feature = example.features.feature["x"]
    feature.float_list.value.extend([1.0, 2.0])
    unpacked = example.SerializeToString().replace(b"\x0a\x08\x00\x00\x80\x3f\x00\x00\x00\x40",
                                                   b"\x0d\x00\x00\x80\x3f\x0d\x00\x00\x00\x40")
    assert unpacked != example.SerializeToString()
    assert parse_single_example(unpacked, {"x": FixedLenFeature([2], torch.float32)})["x"].tolist() == [1.0, 2.0]
    merged = encode_example({"a": 1}) + encode_example({"b": [2.5]})  # protobuf merges concatenated messages
    assert set(parse_single_example(merged)) == {"a", "b"}


def test_layouts_reused_across_records_stay_exact():
    decoder = ExampleDecoder({"label": FixedLenFeature([], torch.int64), "x": FixedLenFeature([2], torch.float32),
                              "name": FixedLenFeature([], "string")})
    for label in [0, 5, 127, 128, 300, 16383, 16384, -1, INT64_MAX, 9, 9]:
        record = encode_example({"label": label, "x": [label / 2, 1.0], "name": str(label % 7)})
        parsed = decoder(record)
        assert parsed["label"].item() == label and parsed["x"].tolist() == [np.float32(label / 2), 1.0]
        assert parsed["name"] == str(label % 7).encode()
    wrong = encode_example({"label": [1, 2], "x": [0.0, 1.0], "name": "0"})
    for _ in range(3):  # the same length as a learned layout, but two labels: still an error
        with pytest.raises(InvalidArgumentError, match="expected 1 values"):
            decoder(wrong)


def test_parse_example_stacks_a_batch():
    records = [encode_example({"label": i, "x": [i, i + 0.5], "name": f"n{i}"}) for i in range(4)]
    batch = parse_example(records, {"label": FixedLenFeature([], torch.int64), "x": FixedLenFeature([2], torch.float32),
                                    "name": FixedLenFeature([], "string"), "v": VarLenFeature(torch.int64)})
    assert batch["label"].tolist() == [0, 1, 2, 3] and batch["x"].shape == (4, 2)
    assert batch["name"] == [b"n0", b"n1", b"n2", b"n3"] and all(v.numel() == 0 for v in batch["v"])


def test_parse_example_batches_match_record_by_record_decoding():
    rng = np.random.default_rng(5)
    features = {
        "label": FixedLenFeature([], torch.int64),
        "grid": FixedLenFeature([2, 3], torch.float32),
        "pair": FixedLenFeature([2], torch.int64, default_value=[7, -7]),
        "name": FixedLenFeature([], "string"),
        "tokens": VarLenFeature(torch.int64),
        "nothing": FixedLenFeature([0], torch.float32),
    }
    labels = [0, 1, 127, 128, 300, 16383, 16384, -1, INT64_MAX, -INT64_MAX - 1]
    records = []
    for i in range(300):  # lengths repeat, so most records go through learned column layouts
        example = {"label": labels[i % len(labels)] if i % 3 else int(rng.integers(0, 200)),
                   "grid": rng.random(6, dtype=np.float32), "name": bytes([i % 256]) * (i % 3),
                   "tokens": list(range(i % 4)), "nothing": np.zeros(0, np.float32)}
        if i % 5:
            example["pair"] = [int(v) for v in rng.integers(-(2**40), 2**40, 2)]
        records.append(encode_example(example))
    singles = [parse_single_example(record, features) for record in records]
    for size in (1, 7, 300):
        for start in range(0, len(records), size):
            batch = parse_example(records[start : start + size], features)
            chunk = singles[start : start + size]
            for key in ("label", "grid", "pair", "nothing"):
                assert batch[key].dtype == chunk[0][key].dtype
                assert torch.equal(batch[key], torch.stack([row[key] for row in chunk]))
            assert batch["name"] == [row["name"] for row in chunk]
            assert [t.tolist() for t in batch["tokens"]] == [row["tokens"].tolist() for row in chunk]
    empty = parse_example([], features)
    assert empty["grid"].shape == (0, 2, 3) and empty["label"].shape == (0,) and empty["name"] == []


def test_parse_example_batch_still_checks_every_record():
    features = {"label": FixedLenFeature([], torch.int64), "x": FixedLenFeature([2], torch.float32)}
    good = [encode_example({"label": 1, "x": [0.0, 1.0]})] * 3
    wrong = encode_example({"label": [1, 2], "x": [0.0, 1.0]})  # as long as a good record, but two labels
    with pytest.raises(InvalidArgumentError, match="'label' \\(int64\\): expected 1 values"):
        parse_example(good + [wrong], features)


def test_sequence_example_round_trip():
    record = encode_sequence_example(
        {"length": 3, "title": "movie"},
        {"frames": [[0.0, 0.5], [1.0, 1.5], [2.0, 2.5]], "tokens": [[], [1], [1, 2]], "words": [["a"], ["b", "c"]]},
    )
    context, sequences = parse_single_sequence_example(
        record,
        context_features={"length": FixedLenFeature([], torch.int64), "title": FixedLenFeature([], "string")},
        sequence_features={
            "frames": FixedLenSequenceFeature([2], torch.float32),
            "tokens": VarLenFeature(torch.int64),
            "words": VarLenFeature("string"),
            "absent": FixedLenSequenceFeature([2], torch.float32, allow_missing=True),
        },
    )
    assert context["length"].item() == 3 and context["title"] == b"movie"
    assert sequences["frames"].tolist() == [[0.0, 0.5], [1.0, 1.5], [2.0, 2.5]]
    assert [t.tolist() for t in sequences["tokens"]] == [[], [1], [1, 2]]
    assert sequences["words"] == [[b"a"], [b"b", b"c"]]
    assert sequences["absent"].shape == (0, 2)
    with pytest.raises(InvalidArgumentError, match="'absent' \\(float32\\): feature list is required"):
        parse_single_sequence_example(record, sequence_features={"absent": FixedLenSequenceFeature([2], torch.float32)})
    everything = parse_single_sequence_example(record)
    assert everything[0]["title"] == [b"movie"] and len(everything[1]["frames"]) == 3


def test_encoding_errors_name_the_feature():
    with pytest.raises(InvalidArgumentError, match="feature 'big': value 9223372036854775808 does not fit in int64"):
        encode_example({"big": 2**63})
    with pytest.raises(InvalidArgumentError, match="feature 'mixed': cannot encode a list of bytes, int"):
        encode_example({"mixed": [b"a", 1]})
    with pytest.raises(InvalidArgumentError, match="feature 'obj': cannot encode dict"):
        encode_example({"obj": {}})
