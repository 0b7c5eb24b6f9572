"""TFRecord files, byte-exact with TensorFlow: framing with CRC checks, GZIP/ZLIB, Examples, datasets.

``format`` reads and writes the framing, ``example``/``encode`` convert ``tf.train.Example`` and
``SequenceExample`` records (``messages``/``wire`` read them by TensorFlow's rules, ``layout`` makes
that fast, ``protos`` holds the messages),
``writer`` writes files atomically, ``index`` keeps index files, ``dataset`` offers
``torch.utils.data`` datasets, ``batches`` holds the batch types (byte strings and ragged rows as a
few tensors), ``collate`` batches variable-length features, ``images`` decodes image features (whole, or a JPEG's crop window) and ``convert``
turns an image folder into shards.
"""
from __future__ import annotations

from loaders.tfrecord.batches import RaggedBytes, RaggedTensor
from loaders.tfrecord.collate import collate_lists, collate_padded, collate_ragged
from loaders.tfrecord.dataset import IndexedTFRecordDataset, TFRecordDataset
from loaders.tfrecord.encode import encode_example, encode_sequence_example
from loaders.tfrecord.example import (
    ExampleDecoder, FixedLenFeature, FixedLenSequenceFeature, VarLenFeature, parse_example, parse_single_example,
    parse_single_sequence_example,
)
from loaders.tfrecord.format import (
    TFRecordCompressionType, TFRecordOptions, iter_records, masked_crc32c, tf_record_iterator,
)
from loaders.tfrecord.images import DecodeImage, RandomResizedCropJPEG, decode_and_crop_jpeg
from loaders.tfrecord.index import create_index, index_path, read_index
from loaders.tfrecord.writer import TFRecordWriter

__all__ = [
    "DecodeImage", "ExampleDecoder", "FixedLenFeature", "FixedLenSequenceFeature", "IndexedTFRecordDataset",
    "RaggedBytes", "RaggedTensor", "RandomResizedCropJPEG",
    "TFRecordCompressionType", "TFRecordDataset", "TFRecordOptions", "TFRecordWriter", "VarLenFeature",
    "collate_lists", "collate_padded", "collate_ragged", "create_index", "decode_and_crop_jpeg", "encode_example",
    "encode_sequence_example",
    "index_path", "iter_records", "masked_crc32c", "parse_example", "parse_single_example",
    "parse_single_sequence_example", "read_index", "tf_record_iterator",
]
