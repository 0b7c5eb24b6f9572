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


def example_with(key: str, feature: bytes) -> bytes:
    """An Example holding one feature given as raw ``Feature`` bytes."""
    entry = b"\x0a" + bytes([len(key)]) + key.encode() + b"\x12" + bytes([len(feature)]) + feature
    body = b"\x0a" + bytes([len(entry)]) + entry
    return b"\x0a" + bytes([len(body)]) + body


def int64_list(payload: bytes) -> bytes:
    """A Feature whose Int64List holds one packed run of these bytes."""
    run = b"\x0a" + bytes([len(payload)]) + payload
    return b"\x1a" + bytes([len(run)]) + run


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


def test_non_canonical_encodings_decode_as_tensorflow_reads_them():
    from loaders.tfrecord import protos

    example = protos.Example()
    feature = example.features.feature["x"]
    feature.float_list.value.extend([1.0, 2.0])
    unpacked = example.SerializeToString().replace(b"\x0a\x08\x00\x00\x80\x3f\x00\x00\x00\x40",
                                                   b"\x0d\x00\x00\x80\x3f\x0d\x00\x00\x00\x40")
    assert unpacked != example.SerializeToString()
    assert parse_single_example(unpacked, {"x": FixedLenFeature([2], torch.float32)})["x"].tolist() == [1.0, 2.0]
    merged = encode_example({"a": 1}) + encode_example({"b": [2.5]})  # TF merges concatenated messages
    assert set(parse_single_example(merged)) == {"a", "b"}
    two_runs = example_with("x", b"\x1a\x06\x0a\x01\x01\x0a\x01\x02")  # TF reads the first packed run only
    assert parse_single_example(two_runs, {"x": VarLenFeature(torch.int64)})["x"].tolist() == [1]


def test_ten_byte_varints_keep_their_low_64_bits_like_protobuf():
    high = b"\xff" * 9 + b"\x7f"  # bits above bit 63 set: protobuf (and TF) read -1
    decoder = ExampleDecoder({"x": FixedLenFeature([], torch.int64)})
    for _ in range(3):  # the full path, then the learned layout
        assert decoder(example_with("x", int64_list(high)))["x"].item() == -1
    many = parse_single_example(example_with("x", int64_list(high * 2 + b"\x05")), {"x": VarLenFeature(torch.int64)})
    assert many["x"].tolist() == [-1, -1, 5]  # over 16 bytes: the vectorized decoder
    with pytest.raises(InvalidArgumentError, match="could not parse a serialized Int64List"):
        parse_single_example(example_with("x", int64_list(b"\xff" * 10 + b"\x01")), {"x": VarLenFeature(torch.int64)})


def test_a_float_run_of_partial_floats_is_read_in_whole_floats_on_every_path():
    run = b"\x0a\x05" + b"\x00\x00\x80\x3f\x01"  # 5 bytes: TF reads one float and ignores the rest
    record = example_with("x", b"\x12" + bytes([len(run)]) + run)
    for spec in (FixedLenFeature([1], torch.float32), VarLenFeature(torch.float32)):
        decoder = ExampleDecoder({"x": spec})
        for _ in range(3):  # the full path, then learned layouts
            assert decoder(record)["x"].tolist() == [1.0]
            assert [row.tolist() for row in decoder.batch([record] * 2)["x"]] == [[1.0], [1.0]]


def test_damaged_records_raise_only_invalid_argument_errors():
    import random

    rng = random.Random(11)
    example = encode_example({"i": [1, -5, 2**40], "f": [0.5, 1.5], "s": [b"ab", b""], "e": []})
    sequence = encode_sequence_example({"n": 3}, {"f": [[1.0], [2.0]], "t": [[1, 2], []], "w": [[b"x"]]})
    features = {"i": VarLenFeature(torch.int64), "f": FixedLenFeature([2], torch.float32),
                "s": VarLenFeature("string"), "e": FixedLenFeature([], torch.int64, default_value=0)}
    lists = {"f": FixedLenSequenceFeature([1], torch.float32), "t": VarLenFeature(torch.int64), "w": VarLenFeature("string")}
    parses = [
        lambda r: parse_single_example(r, features), lambda r: parse_single_example(r),
        lambda r: parse_example([r, r], features),
        lambda r: parse_single_sequence_example(r, {"n": FixedLenFeature([], torch.int64)}, lists),
        lambda r: parse_single_sequence_example(r),
    ]
    outcomes = []
    for trial in range(1500):
        record = bytearray(sequence if trial % 2 else example)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(record) + 1)
            choice = rng.random()
            if choice < 0.5 and at < len(record):
                record[at] = rng.choice([0x00, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A, rng.randrange(256)])
            elif choice < 0.8:
                del record[at:]
            else:
                record[at:at] = b"\xff" * rng.randint(1, 11)
        outcomes += [(bytes(record).hex(), _raised(lambda: parse(bytes(record)))) for parse in parses]
    others = [(record, repr(exc)[:120]) for record, exc in outcomes
              if exc is not None and not isinstance(exc, InvalidArgumentError)]  # no IndexError, OverflowError, ...
    assert not others, others[:5]
    failed = sum(exc is not None for _, exc in outcomes)
    assert 0 < failed < len(outcomes)  # damage is caught, and read where TF's parser ignores it


@pytest.mark.parametrize("feature", [
    b"\x1a\x0c\x0a" + b"\xff" * 10 + b"\x01",  # a packed run whose length varint runs past 10 bytes
    b"\x1a\x02\x0a\xff",  # ... or past the end of the record
    b"\x12\x03\x0a\x80\x80",  # the same in a FloatList
    b"\x0a\x03\x0a\x05ab",  # a bytes item longer than its list
])
def test_broken_lengths_inside_value_lists_raise_invalid_argument(feature):
    kind = {0x0A: "string", 0x12: torch.float32, 0x1A: torch.int64}[feature[0]]
    with pytest.raises(InvalidArgumentError, match="could not parse a serialized (Bytes|Float|Int64)List"):
        parse_single_example(example_with("x", feature), {"x": VarLenFeature(kind)})


def _raised(call):
    """The exception ``call()`` raises, or None."""
    try:
        call()
    except Exception as exc:  # every kind is collected: the test checks which kinds escape
        return exc
    return None


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


def test_tf1_spelling_reuses_one_decoder_and_its_layouts():
    from loaders.tfrecord.example import decoder_for

    def tf1():  # TF1 code builds its description afresh, with list shapes, on every call
        return {"x": FixedLenFeature([], torch.int64), "y": FixedLenFeature([2], "float32", default_value=[1.0, 2.0]),
                "s": VarLenFeature("string")}

    decoder = decoder_for(tf1())
    assert decoder_for(tf1()) is decoder
    assert decoder_for({"x": FixedLenFeature((), "int64"), "y": FixedLenFeature((2,), torch.float32, (1.0, 2.0)),
                        "s": VarLenFeature(bytes)}) is decoder  # the same description, spelled otherwise
    assert decoder_for({**tf1(), "x": FixedLenFeature([1], torch.int64)}) is not decoder
    record = encode_example({"x": 7, "s": [b"a"]})
    for _ in range(3):
        parsed = parse_single_example(record, tf1())
    assert parsed["x"].item() == 7 and parsed["y"].tolist() == [1.0, 2.0] and parsed["s"] == [b"a"]
    assert len(record) in decoder._layouts.by_length  # the second record was decoded by a learned layout


def test_parse_example_pads_fixed_len_sequence_features_with_the_scalar_default():
    records = [encode_example({"n": [1, 2, 3, 4], "w": ["a", "b"]}), encode_example({"n": [5, 6]}), encode_example({})]
    batch = parse_example(records, {
        "n": FixedLenSequenceFeature([2], torch.int64, allow_missing=True, default_value=-1),
        "w": FixedLenSequenceFeature([], "string", allow_missing=True, default_value="pad"),
        "f": FixedLenSequenceFeature([3], torch.float32, allow_missing=True),
    })
    assert batch["n"].tolist() == [[[1, 2], [3, 4]], [[5, 6], [-1, -1]], [[-1, -1], [-1, -1]]]
    assert batch["w"] == [[b"a", b"b"], [b"pad", b"pad"], [b"pad", b"pad"]]
    assert batch["f"].shape == (3, 0, 3) and batch["f"].dtype == torch.float32
    with pytest.raises(InvalidArgumentError, match="FixedLenSequenceFeature pads with a scalar"):
        parse_example(records, {"n": FixedLenSequenceFeature([2], torch.int64, allow_missing=True, default_value=[1, 2])})


def test_only_described_features_are_read_and_a_batch_error_names_its_record():
    bad_feature = b"\x28\x01"  # no value list of a known type
    entries = b"".join(b"\x0a" + bytes([len(e)]) + e for e in [
        b"\x0a\x04junk\x12\x02" + bad_feature, b"\x0a\x01x\x12\x05" + int64_list(b"\x07")])
    record = b"\x0a" + bytes([len(entries)]) + entries
    assert parse_single_example(record, {"x": FixedLenFeature([], torch.int64)})["x"].item() == 7
    with pytest.raises(InvalidArgumentError, match=r"feature 'junk' \(int64\): data types don't match: found unknown"):
        parse_single_example(record, {"junk": FixedLenFeature([], torch.int64)})
    good = encode_example({"x": 1})
    with pytest.raises(InvalidArgumentError, match=r"^record 2 \('third'\) of the batch: feature 'junk'"):
        parse_example([good, good, record], {"junk": VarLenFeature(torch.int64)}, example_names=["a", "b", "third"])


def test_a_sequence_context_feature_without_values_is_present_not_missing():
    record = encode_sequence_example({"c": []}, {"f": [[1]]})  # the Feature of "c" has no value list
    with pytest.raises(InvalidArgumentError, match=r"'c' \(int64\): expected 1 values for shape \(\), found 0"):
        parse_single_sequence_example(record, {"c": FixedLenFeature([], torch.int64, default_value=5)})
    context, lists = parse_single_sequence_example(record, {"c": VarLenFeature(torch.int64)})
    assert context["c"].tolist() == [] and lists == {}  # TF: a side without a description is empty
    assert parse_single_example(encode_example({"c": []}), {"c": FixedLenFeature([], torch.int64, default_value=5)})[
        "c"].item() == 5  # in an Example the same Feature is missing


def test_error_messages_quote_short_excerpts():
    huge_key, huge_name = "k" * 10**6, "n" * 10**6
    failures = [
        lambda: parse_single_example(encode_example({"a": 1}), {huge_key: FixedLenFeature([], torch.int64)}),
        lambda: parse_single_example(b"", {"a": FixedLenFeature([], torch.int64)}, example_names=huge_name),
        lambda: parse_single_example(b"", {"a": [0] * 10**6}),
        lambda: parse_example([b"", b""], {"a": FixedLenFeature([], torch.int64)}, example_names=[huge_name] * 2),
        lambda: encode_example({b"\x00" * 10**6: 1}),
        lambda: encode_example({huge_key: [b"a", 1]}),
        lambda: encode_example({"big": 10**4000}),
        lambda: encode_example({huge_key: 2**63}),
    ]
    for failure in failures:
        with pytest.raises(InvalidArgumentError) as caught:
            failure()
        assert len(str(caught.value)) < 400, str(caught.value)[:500]
