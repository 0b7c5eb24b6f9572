"""TensorFlow 1.x's input pipeline in PyTorch terms: queues, Coordinator and QueueRunner, readers,
producers, ``decode_csv``, TFRecord, and ``torch.utils.data`` datasets.

Every public name is importable from here under its TF1 name (``loaders.FIFOQueue``,
``loaders.string_input_producer``, ...). Submodules load on first use, so ``import loaders``
stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "errors": [
        "OpError", "OutOfRangeError", "CancelledError", "DeadlineExceededError", "NotFoundError",
        "InvalidArgumentError", "DataLossError", "UnknownError",
    ],
    "dtypes": ["string", "as_dtype"],
    "queues": ["QueueBase", "FIFOQueue", "RandomShuffleQueue", "PaddingFIFOQueue", "PriorityQueue"],
    "coordinator": ["Coordinator"],
    "queue_runner": ["QueueRunner", "add_queue_runner", "start_queue_runners"],
    "producers": [
        "input_producer", "string_input_producer", "range_input_producer", "slice_input_producer",
        "batch", "shuffle_batch", "batch_join", "shuffle_batch_join",
    ],
    "readers": [
        "ReaderBase", "TextLineReader", "FixedLengthRecordReader", "WholeFileReader", "TFRecordReader",
    ],
    "csv": ["decode_csv", "CSVDataset"],
    "tfrecord": [
        "TFRecordOptions", "TFRecordCompressionType", "TFRecordWriter", "tf_record_iterator",
        "FixedLenFeature", "VarLenFeature", "FixedLenSequenceFeature",
        "parse_example", "parse_single_example", "parse_single_sequence_example",
        "TFRecordDataset", "IndexedTFRecordDataset", "RaggedBytes", "RaggedTensor", "collate_ragged",
    ],
    "loader": ["SharedMemoryDataLoader"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    """Import the submodule that owns ``name`` on first access (PEP 562)."""
    if name not in _WHERE:
        raise AttributeError(f"module 'loaders' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"loaders.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
