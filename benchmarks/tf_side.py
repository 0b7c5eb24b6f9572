"""TensorFlow's side of the benchmarks, run by a TensorFlow interpreter (no torch there).

    TF_PYTHON benchmarks/tf_side.py tfrecord FILE REPEAT
    TF_PYTHON benchmarks/tf_side.py images GLOB REPEAT SIZE BATCH

Prints one JSON object, ``{case: best seconds}``, as its last line. ``benchmarks/tfrecord.py``
and ``benchmarks/images.py`` start it (finding the interpreter as the TF oracle tests do) and
lose only these rows when it fails. The cases of each kind run in turn, ``REPEAT`` rounds.
"""
from __future__ import annotations

import json
import math
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


def torchvision_window(tf, shape, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), attempts: int = 10):
    """torchvision's ``RandomResizedCrop.get_params`` in TF ops: ``[top, left, height, width]`` of a
    crop of an image of ``shape`` [height, width, ...], drawn as torchvision draws it (area uniform in
    ``scale``, log aspect ratio uniform in ``ratio``, the first of ``attempts`` draws that fits, else
    the central crop it falls back to), so that tf.data decodes windows of the same sizes as ours.
    TF's ``sample_distorted_bounding_box`` draws smaller ones (height uniform; 0.37 of the image on
    average against torchvision's 0.43 on the benchmark's images)."""
    height, width = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    target = height * width * tf.random.uniform([attempts], scale[0], scale[1], dtype=tf.float64)
    aspect = tf.exp(tf.random.uniform([attempts], math.log(ratio[0]), math.log(ratio[1]), dtype=tf.float64))
    widths, heights = tf.round(tf.sqrt(target * aspect)), tf.round(tf.sqrt(target / aspect))
    fits = (widths > 0) & (widths <= width) & (heights > 0) & (heights <= height)
    first = tf.argmax(tf.cast(fits, tf.int32))
    drawn = tf.reduce_any(fits)
    crop_height = tf.where(drawn, heights[first], tf.where(width / height < min(ratio), tf.round(width / min(ratio)), height))
    crop_width = tf.where(drawn, widths[first], tf.where(width / height > max(ratio), tf.round(height * max(ratio)), width))
    crop_height, crop_width = tf.cast(crop_height, tf.int32), tf.cast(crop_width, tf.int32)
    room_y, room_x = tf.cast(shape[0], tf.int32) - crop_height, tf.cast(shape[1], tf.int32) - crop_width
    top = tf.where(drawn, tf.random.uniform([], 0, room_y + 1, dtype=tf.int32), room_y // 2)
    left = tf.where(drawn, tf.random.uniform([], 0, room_x + 1, dtype=tf.int32), room_x // 2)
    return tf.stack([top, left, crop_height, crop_width])


def tf_window(tf, shape):
    """TF's own crop sampler as ImageNet training scripts call it: ``[top, left, height, width]``."""
    begin, crop, _ = tf.image.sample_distorted_bounding_box(
        shape, tf.zeros([0, 0, 4]), min_object_covered=0.0, aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True)
    return tf.stack([begin[0], begin[1], crop[0], crop[1]])


def images_cases(tf, pattern: str, size: int, batch_size: int) -> dict:
    """ImageNet-style training input: interleave the shards, decode_and_crop_jpeg a random crop,
    resize, flip, batch, prefetch: with TF's defaults (fast IDCT, resize without antialiasing) and
    its own crop sampler, as TF users write it; with TF's defaults and crop windows drawn as
    torchvision draws them (the same work as ours); and with torchvision's pixels (accurate IDCT,
    antialiased resize) and windows, as the other rows make."""
    features = {"image/encoded": tf.io.FixedLenFeature([], tf.string),
                "image/class/label": tf.io.FixedLenFeature([], tf.int64)}

    def pipeline(draw, dct_method: str, antialias: bool):
        def decode(record):
            example = tf.io.parse_single_example(record, features)
            encoded = example["image/encoded"]
            window = draw(tf, tf.io.extract_jpeg_shape(encoded))
            image = tf.io.decode_and_crop_jpeg(encoded, window, channels=3, dct_method=dct_method)
            image = tf.image.resize(image, [size, size], antialias=antialias)
            return tf.image.random_flip_left_right(image), example["image/class/label"]

        files = tf.data.Dataset.list_files(pattern, shuffle=False)
        return (files.interleave(tf.data.TFRecordDataset, cycle_length=2, num_parallel_calls=2)
                .map(decode, num_parallel_calls=2).batch(batch_size).prefetch(2))

    name = "TensorFlow tf.data: interleave, map(decode_and_crop_jpeg, 2), batch, prefetch"
    pipelines = {f"{name}; TF's defaults": pipeline(tf_window, "", False),
                 f"{name}; TF's defaults, torchvision's crop windows": pipeline(torchvision_window, "", False),
                 f"{name}; torchvision's pixels and crop windows (accurate IDCT, antialiased resize)":
                     pipeline(torchvision_window, "INTEGER_ACCURATE", True)}
    return {case: (lambda data=data: count(data)) for case, data in pipelines.items()}


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
