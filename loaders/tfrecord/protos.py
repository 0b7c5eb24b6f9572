"""The ``tf.train.Example`` family of protobuf messages, in a private descriptor pool.

TensorFlow registers ``tensorflow.Example`` and friends in protobuf's default pool, and so does
the ``tfrecord`` package's ``example_pb2``; the two clash ("duplicate symbol") whichever is
imported second. Building the same schema (TensorFlow's ``feature.proto`` and ``example.proto``)
in a pool of our own keeps this package importable before or after ``tensorflow``, and the wire
format, which is all that files carry, is identical.
"""
from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _message(name: str, *fields: tuple, map_entry: bool = False, oneof: str = "") -> descriptor_pb2.DescriptorProto:
    """A message with fields ``(name, number, type, label, type_name, in_oneof, packed)``."""
    message = descriptor_pb2.DescriptorProto(name=name)
    if map_entry:
        message.options.map_entry = True
    if oneof:
        message.oneof_decl.add(name=oneof)
    for field_name, number, kind, label, type_name, in_oneof, packed in fields:
        field = message.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name
        if in_oneof:
            field.oneof_index = 0
        if packed:
            field.options.packed = True
    return message


def example_schema() -> descriptor_pb2.FileDescriptorProto:
    """TensorFlow's feature.proto and example.proto as one file descriptor (package ``tensorflow``)."""
    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    msg, string = _F.TYPE_MESSAGE, _F.TYPE_STRING
    schema = descriptor_pb2.FileDescriptorProto(name="loaders/tfrecord/example.proto", package="tensorflow", syntax="proto3")
    schema.message_type.extend([
        _message("BytesList", ("value", 1, _F.TYPE_BYTES, rep, "", False, False)),
        _message("FloatList", ("value", 1, _F.TYPE_FLOAT, rep, "", False, True)),
        _message("Int64List", ("value", 1, _F.TYPE_INT64, rep, "", False, True)),
        _message(
            "Feature",
            ("bytes_list", 1, msg, opt, ".tensorflow.BytesList", True, False),
            ("float_list", 2, msg, opt, ".tensorflow.FloatList", True, False),
            ("int64_list", 3, msg, opt, ".tensorflow.Int64List", True, False),
            oneof="kind",
        ),
        _message("Features", ("feature", 1, msg, rep, ".tensorflow.Features.FeatureEntry", False, False)),
        _message("FeatureList", ("feature", 1, msg, rep, ".tensorflow.Feature", False, False)),
        _message("FeatureLists", ("feature_list", 1, msg, rep, ".tensorflow.FeatureLists.FeatureListEntry", False, False)),
        _message("Example", ("features", 1, msg, opt, ".tensorflow.Features", False, False)),
        _message(
            "SequenceExample",
            ("context", 1, msg, opt, ".tensorflow.Features", False, False),
            ("feature_lists", 2, msg, opt, ".tensorflow.FeatureLists", False, False),
        ),
    ])
    features, feature_lists = schema.message_type[4], schema.message_type[6]
    features.nested_type.append(_message(
        "FeatureEntry", ("key", 1, string, opt, "", False, False), ("value", 2, msg, opt, ".tensorflow.Feature", False, False),
        map_entry=True,
    ))
    feature_lists.nested_type.append(_message(
        "FeatureListEntry", ("key", 1, string, opt, "", False, False),
        ("value", 2, msg, opt, ".tensorflow.FeatureList", False, False), map_entry=True,
    ))
    return schema


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(example_schema())


def message_class(name: str) -> Any:
    """The message class ``tensorflow.<name>`` (``Example``, ``SequenceExample``, ``Feature``, ...)."""
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"tensorflow.{name}"))


Example = message_class("Example")
SequenceExample = message_class("SequenceExample")
Feature = message_class("Feature")
Features = message_class("Features")
FeatureList = message_class("FeatureList")
BytesList = message_class("BytesList")
FloatList = message_class("FloatList")
Int64List = message_class("Int64List")

__all__ = [
    "BytesList", "Example", "Feature", "FeatureList", "Features", "FloatList", "Int64List",
    "SequenceExample", "example_schema", "message_class",
]
