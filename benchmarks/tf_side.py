"""TensorFlow's side of the benchmarks, run by a TensorFlow interpreter (no torch there).

    TF_PYTHON benchmarks/tf_side.py tfrecord FILE REPEAT
    TF_PYTHON benchmarks/tf_side.py images GLOB REPEAT SIZE BATCH

Prints one JSON object, ``{case: best seconds}``, as its last line. ``benchmarks/tfrecord.py``
and ``benchmarks/images.py`` start it (finding the interpreter as the TF oracle tests do) and
lose only these rows when it fails. The cases of each kind run in turn, ``REPEAT`` rounds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def best_of(cases: dict, repeat: int) -> dict:
    """Each case timed ``repeat`` times, interleaved; the best time of each."""
    best = {name: float("inf") for name in cases}
    for _ in range(repeat):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def count(dataset) -> int:
    return int(dataset.reduce(0, lambda n, _: n + 1).numpy())


def tfrecord_cases(tf, path: str) -> dict:
    """TF1's record iterator and tf.data parsing of the benchmark file, records and batches of 256,
    in one thread and with 2 parallel calls (the machine's cores)."""
    features = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "floats": tf.io.FixedLenFeature([16], tf.float32),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }
    single = lambda record: tf.io.parse_single_example(record, features)  # noqa: E731
    batch = lambda records: tf.io.parse_example(records, features)  # noqa: E731
    data = tf.data.TFRecordDataset(path)
    return {
        "(a) framing + CRC: TensorFlow tf_record_iterator":
            lambda: sum(1 for _ in tf.compat.v1.io.tf_record_iterator(path)),
        "(b) in-process, records: TensorFlow tf.data parse_single_example": lambda: count(data.map(single)),
        "(b) in-process, batches of 256: TensorFlow tf.data parse_example": lambda: count(data.batch(256).map(batch)),
        "(c) 2 threads, records -> batches of 256: TensorFlow tf.data map(parse_single_example, 2).batch":
            lambda: count(data.map(single, num_parallel_calls=2).batch(256).prefetch(2)),
        "(c) 2 threads, batches of 256: TensorFlow tf.data batch.map(parse_example, 2)":
            lambda: count(data.batch(256).map(batch, num_parallel_calls=2).prefetch(2)),
    }


def images_cases(tf, pattern: str, size: int, batch_size: int) -> dict:
    """ImageNet-style training input: interleave the shards, decode_and_crop_jpeg a random crop
    (TF's sample_distorted_bounding_box, as RandomResizedCrop draws it), resize, flip, batch, prefetch;
    with TF's defaults (fast IDCT, resize without antialiasing), and with torchvision's pixels
    (accurate IDCT, antialiased resize) as the other rows make."""
    features = {"image/encoded": tf.io.FixedLenFeature([], tf.string),
                "image/class/label": tf.io.FixedLenFeature([], tf.int64)}

    def pipeline(dct_method: str, antialias: bool):
        def decode(record):
            example = tf.io.parse_single_example(record, features)
            encoded = example["image/encoded"]
            shape = tf.io.extract_jpeg_shape(encoded)
            begin, crop, _ = tf.image.sample_distorted_bounding_box(
                shape, tf.zeros([0, 0, 4]), min_object_covered=0.0, aspect_ratio_range=(3 / 4, 4 / 3),
                area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True)
            window = tf.stack([begin[0], begin[1], crop[0], crop[1]])
            image = tf.io.decode_and_crop_jpeg(encoded, window, channels=3, dct_method=dct_method)
            image = tf.image.resize(image, [size, size], antialias=antialias)
            return tf.image.random_flip_left_right(image), example["image/class/label"]

        files = tf.data.Dataset.list_files(pattern, shuffle=False)
        return (files.interleave(tf.data.TFRecordDataset, cycle_length=2, num_parallel_calls=2)
                .map(decode, num_parallel_calls=2).batch(batch_size).prefetch(2))

    defaults, same_pixels = pipeline("", False), pipeline("INTEGER_ACCURATE", True)
    name = "TensorFlow tf.data: interleave, map(decode_and_crop_jpeg, 2), batch, prefetch"
    return {name: lambda: count(defaults),
            f"{name}; accurate IDCT, antialiased resize (torchvision's pixels)": lambda: count(same_pixels)}


def run_tensorflow(args: list, timeout: float) -> tuple:
    """Run this file with ``args`` in the TensorFlow interpreter (``LOADERS_TF_PYTHON``, else the
    checkout's ``.venv-tf``, as the oracle tests find it): ``(results, "")``, or ``({}, why not)``."""
    sys.path.insert(0, str(ROOT / "tests" / "tf_oracle"))
    try:
        from tf_interpreter import MISSING, tf_python
    finally:
        sys.path.pop(0)
    python = tf_python()
    if python is None:
        return {}, MISSING
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run([python, __file__, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        return {}, f"{python}: {exc}"
    last = (done.stdout.strip().splitlines() or [""])[-1]
    if done.returncode:
        error = (done.stderr.strip().splitlines() or [""])[-1]
        return {}, f"{python} exited with status {done.returncode}: {error}"
    try:
        return dict(json.loads(last)), ""
    except (ValueError, TypeError):
        return {}, f"{python} printed no results (last line {last[:80]!r})"


def main(argv: list) -> int:
    import tensorflow as tf

    kind, repeat = argv[0], int(argv[2])
    if kind == "tfrecord":
        cases = tfrecord_cases(tf, argv[1])
    else:
        cases = images_cases(tf, argv[1], int(argv[3]), int(argv[4]))
    print(json.dumps(best_of(cases, repeat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
