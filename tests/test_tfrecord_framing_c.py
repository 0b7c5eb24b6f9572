"""The C framing loop and the pure-Python one agree on every file: the same records, then the same
error (message, file and offset), for seeded random corruptions and cuts of a real file."""
from __future__ import annotations

import gzip
import random

import pytest

import loaders.tfrecord.format as format_module
from loaders.errors import DataLossError
from loaders.tfrecord.format import encode_record, iter_records

pytestmark = pytest.mark.skipif(format_module._framing is None,
                                reason="the C framing loop is not built (pip install -e . builds it)")


def _read(path, monkeypatch, loop, **options):
    """What iter_records gives with one loop: the records, then the error's text (or None)."""
    with monkeypatch.context() as patch:
        if loop == "Python":
            patch.setattr(format_module, "_framing", None)
        records, error = [], None
        try:
            for offset, record in iter_records(path, **options):
                records.append((offset, record))
        except DataLossError as exc:
            error = str(exc)
    return records, error


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_c_and_python_loops_agree_on_damaged_files(tmp_path, monkeypatch, suffix):
    rng = random.Random(7)
    good = b"".join(encode_record(bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 9, 300]))))
                    for _ in range(60))
    path = tmp_path / f"damaged.tfrecord{suffix}"
    disagreements, errors = [], 0
    for trial in range(60):
        data = bytearray(good)
        if trial % 3:  # a flipped bit anywhere: header, length CRC, data or data CRC
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        else:  # a cut anywhere
            del data[rng.randrange(len(data)):]
        path.write_bytes(gzip.compress(bytes(data)) if suffix else bytes(data))
        for verify in (True, False):
            c, python = (_read(path, monkeypatch, loop, verify=verify) for loop in ("C", "Python"))
            errors += c[1] is not None
            if c != python:
                disagreements.append((trial, verify, c[1], python[1], len(c[0]), len(python[0])))
    assert not disagreements
    assert errors > 40  # most damage is caught (a flip in a bit that a cut removes, or verify=False, may pass)
