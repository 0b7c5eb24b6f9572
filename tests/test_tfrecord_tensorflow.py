"""Living beside TensorFlow: its protos share our message names; with TF installed, bytes must match."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from loaders.tfrecord import (
    FixedLenFeature, TFRecordWriter, encode_example, iter_records, parse_example, parse_single_example,
)

ROOT = Path(__file__).resolve().parents[1]
# Registers tensorflow.Example & co. in protobuf's default pool under TensorFlow's file name, as
# `import tensorflow` does, before or after loaders.tfrecord is used.
REGISTER_TF_NAMES = """
from google.protobuf import descriptor_pool
from loaders.tfrecord.protos import example_schema
schema = example_schema()
schema.name = "tensorflow/core/example/example.proto"
descriptor_pool.Default().Add(schema)
"""
USE_LOADERS = """
import torch
from loaders.tfrecord import FixedLenFeature, encode_example, parse_single_example
record = encode_example({"label": 3, "image": b"px"})
parsed = parse_single_example(record, {"label": FixedLenFeature([], torch.int64), "image": FixedLenFeature([], "string")})
assert parsed["label"].item() == 3 and parsed["image"] == b"px", parsed
"""


@pytest.mark.parametrize("order", ["tensorflow first", "tensorflow after"])
def test_works_when_tensorflow_protos_are_registered(order):
    steps = [REGISTER_TF_NAMES, USE_LOADERS] if order == "tensorflow first" else [USE_LOADERS, REGISTER_TF_NAMES]
    code = "\n".join(textwrap.dedent(step) for step in steps) + "\nprint('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_byte_exact_with_real_tensorflow(tmp_path):
    tf = pytest.importorskip("tensorflow")
    records = [encode_example({"label": i, "image": bytes([i]) * i, "x": [i / 3]}) for i in range(50)] + [b""]
    for compression, suffix in [("", ""), ("GZIP", ".gz"), ("ZLIB", ".zlib")]:
        theirs, ours = tmp_path / f"tf.tfrecord{suffix}", tmp_path / f"ours.tfrecord{suffix}"
        with tf.io.TFRecordWriter(str(theirs), tf.io.TFRecordOptions(compression_type=compression)) as writer:
            for record in records:
                writer.write(record)
        with TFRecordWriter(ours) as writer:
            for record in records:
                writer.write(record)
        assert ours.read_bytes() == theirs.read_bytes()
        assert [data for _, data in iter_records(theirs)] == records
        assert [r.numpy() for r in tf.data.TFRecordDataset(str(ours), compression_type=compression)] == records
    parsed = tf.io.parse_single_example(records[7], {"label": tf.io.FixedLenFeature([], tf.int64)})
    assert int(parsed["label"]) == 7
    example = tf.train.Example()
    example.features.feature["label"].int64_list.value.append(9)
    assert parse_single_example(example.SerializeToString(), {"label": FixedLenFeature([], torch.int64)})["label"] == 9
    assert encode_example({"label": 9}) == example.SerializeToString(deterministic=True)


def test_parse_example_batches_match_tensorflow():
    tf = pytest.importorskip("tensorflow")
    labels = [0, 127, 128, 16384, -1, 2**63 - 1, -(2**63)]
    records = [
        encode_example({"label": labels[i % len(labels)], "grid": [i / 7 + k for k in range(6)], "name": f"n{i}" * (i % 3),
                        **({"pair": [i, -i]} if i % 4 else {})})
        for i in range(40)
    ]
    ours_spec = {"label": FixedLenFeature([], torch.int64), "grid": FixedLenFeature([2, 3], torch.float32),
                 "name": FixedLenFeature([], "string"), "pair": FixedLenFeature([2], torch.int64, default_value=[5, 6])}
    tf_spec = {"label": tf.io.FixedLenFeature([], tf.int64), "grid": tf.io.FixedLenFeature([2, 3], tf.float32),
               "name": tf.io.FixedLenFeature([], tf.string), "pair": tf.io.FixedLenFeature([2], tf.int64, default_value=[5, 6])}
    for start in range(0, 40, 16):
        ours = parse_example(records[start : start + 16], ours_spec)
        theirs = tf.io.parse_example(records[start : start + 16], tf_spec)
        for key in ("label", "grid", "pair"):
            assert ours[key].tolist() == theirs[key].numpy().tolist()
        assert ours["name"] == list(theirs["name"].numpy())
