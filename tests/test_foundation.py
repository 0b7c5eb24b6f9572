"""The package's shared pieces: error classes, the dtype vocabulary, the sharding rule, lazy exports."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import loaders
from loaders import errors
from loaders.dtypes import as_dtype, dtype_name, is_string, string
from loaders.sharding import Shard, current_shard, split


def test_errors_keep_tf1_hierarchy():
    assert issubclass(errors.OutOfRangeError, errors.OpError)
    assert issubclass(errors.DeadlineExceededError, TimeoutError)
    assert issubclass(errors.InvalidArgumentError, ValueError)
    assert errors.DataLossError("bad crc at offset 12").message == "bad crc at offset 12"


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("float32", torch.float32), ("tf.int64", torch.int64), (np.float64, torch.float64),
        (np.dtype("int32"), torch.int32), (torch.uint8, torch.uint8), ("string", string),
        (str, string), (bytes, string), ("float", torch.float32), (bool, torch.bool),
    ],
)
def test_as_dtype_accepts_tf_numpy_and_torch_spellings(spec, expected):
    assert as_dtype(spec) is expected


def test_as_dtype_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown dtype 'flaot32'"):
        as_dtype("flaot32")


def test_dtype_names_for_messages():
    assert dtype_name(torch.float32) == "float32" and dtype_name(string) == "string"
    assert is_string(as_dtype("string")) and not is_string(torch.int64)


def test_outside_workers_there_is_one_shard():
    assert current_shard() == Shard(0, 1)


def test_split_is_round_robin_and_covers_every_item_once():
    items = list(range(17))
    parts = [split(items, Shard(i, 6)) for i in range(6)]
    assert sorted(x for p in parts for x in p) == items
    assert parts[1] == [1, 7, 13]


def test_public_names_resolve_lazily():
    assert loaders.OutOfRangeError is errors.OutOfRangeError
    assert "FIFOQueue" in dir(loaders)
    with pytest.raises(AttributeError):
        loaders.NoSuchThing
