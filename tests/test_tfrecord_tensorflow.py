"""Living beside TensorFlow: its protos share our message names; and TensorFlow itself, run in its own
interpreter (as the oracle runs it), writes the same bytes as we do and reads ours."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from loaders.tfrecord import (
    FixedLenFeature, TFRecordOptions, TFRecordWriter, encode_example, iter_records, parse_example, parse_single_example,
)

sys.path.insert(0, str(Path(__file__).resolve().parent / "tf_oracle"))

from tf_interpreter import run_tensorflow  # noqa: E402

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
COMPRESSIONS = [("", ""), ("GZIP", ".gz"), ("ZLIB", ".zlib")]
# The TensorFlow half, run by the TF interpreter in a folder holding job.json and our files: it
# writes the same records with tf.io.TFRecordWriter, reads ours with tf.data, parses Examples,
# and leaves what it saw in tf.json (bytes as hex).
TENSORFLOW_SIDE = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
work = sys.argv[1]
job = json.load(open(os.path.join(work, "job.json")))
records = [bytes.fromhex(h) for h in job["records"]]
out = {"read_ours": {}}
for compression, suffix in job["compressions"]:
    options = tf.io.TFRecordOptions(compression_type=compression)
    with tf.io.TFRecordWriter(os.path.join(work, "tf.tfrecord" + suffix), options) as writer:
        for record in records:
            writer.write(record)
    ours = tf.data.TFRecordDataset(os.path.join(work, "ours.tfrecord" + suffix), compression_type=compression)
    out["read_ours"][compression] = [r.numpy().hex() for r in ours]
out["label_of_7"] = int(tf.io.parse_single_example(records[7], {"label": tf.io.FixedLenFeature([], tf.int64)})["label"])
example = tf.train.Example()
example.features.feature["label"].int64_list.value.append(9)
out["example_9"] = example.SerializeToString(deterministic=True).hex()
spec = {"label": tf.io.FixedLenFeature([], tf.int64), "grid": tf.io.FixedLenFeature([2, 3], tf.float32),
        "name": tf.io.FixedLenFeature([], tf.string), "pair": tf.io.FixedLenFeature([2], tf.int64, default_value=[5, 6])}
batch = [bytes.fromhex(h) for h in job["batch"]]
out["batches"] = []
for start in range(0, len(batch), 16):
    parsed = tf.io.parse_example(batch[start:start + 16], spec)
    out["batches"].append({key: [v.hex() for v in value.numpy().tolist()] if key == "name" else value.numpy().tolist()
                           for key, value in parsed.items()})
json.dump(out, open(os.path.join(work, "tf.json"), "w"))
"""


@pytest.mark.parametrize("order", ["tensorflow first", "tensorflow after"])
def test_works_when_tensorflow_protos_are_registered(order):
    steps = [REGISTER_TF_NAMES, USE_LOADERS] if order == "tensorflow first" else [USE_LOADERS, REGISTER_TF_NAMES]
    code = "\n".join(textwrap.dedent(step) for step in steps) + "\nprint('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


RECORDS = [encode_example({"label": i, "image": bytes([i]) * i, "x": [i / 3]}) for i in range(50)] + [b""]
LABELS = [0, 127, 128, 16384, -1, 2**63 - 1, -(2**63)]
BATCH = [
    encode_example({"label": LABELS[i % len(LABELS)], "grid": [i / 7 + k for k in range(6)], "name": f"n{i}" * (i % 3),
                    **({"pair": [i, -i]} if i % 4 else {})})
    for i in range(40)
]


@pytest.fixture(scope="module")
def tensorflow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The folder holding our files and TensorFlow's, and what TensorFlow saw (one run of its interpreter)."""
    work = tmp_path_factory.mktemp("tensorflow")
    for compression, suffix in COMPRESSIONS:
        with TFRecordWriter(work / f"ours.tfrecord{suffix}", TFRecordOptions(compression)) as writer:
            for record in RECORDS:
                writer.write(record)
    job = {"records": [r.hex() for r in RECORDS], "batch": [r.hex() for r in BATCH], "compressions": COMPRESSIONS}
    (work / "job.json").write_text(json.dumps(job))
    run_tensorflow(TENSORFLOW_SIDE, work)
    return work, json.loads((work / "tf.json").read_text())


@pytest.mark.parametrize("compression,suffix", COMPRESSIONS)
def test_files_are_byte_exact_with_tensorflow_both_ways(tensorflow, compression, suffix):
    work, seen = tensorflow
    assert (work / f"ours.tfrecord{suffix}").read_bytes() == (work / f"tf.tfrecord{suffix}").read_bytes()
    assert [data for _, data in iter_records(work / f"tf.tfrecord{suffix}")] == RECORDS
    assert [bytes.fromhex(h) for h in seen["read_ours"][compression]] == RECORDS


def test_examples_mean_the_same_to_tensorflow(tensorflow):
    _, seen = tensorflow
    assert seen["label_of_7"] == 7
    theirs = bytes.fromhex(seen["example_9"])
    assert parse_single_example(theirs, {"label": FixedLenFeature([], torch.int64)})["label"] == 9
    assert encode_example({"label": 9}) == theirs


def test_parse_example_batches_match_tensorflow(tensorflow):
    _, seen = tensorflow
    spec = {"label": FixedLenFeature([], torch.int64), "grid": FixedLenFeature([2, 3], torch.float32),
            "name": FixedLenFeature([], "string"), "pair": FixedLenFeature([2], torch.int64, default_value=[5, 6])}
    for index, start in enumerate(range(0, len(BATCH), 16)):
        ours, theirs = parse_example(BATCH[start : start + 16], spec), seen["batches"][index]
        for key in ("label", "grid", "pair"):
            assert ours[key].tolist() == theirs[key]
        assert [name.hex() for name in ours["name"]] == theirs["name"]
