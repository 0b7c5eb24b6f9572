"""TensorFlow 1.x's error classes, kept by name and meaning (one place for all of them).

``OutOfRangeError`` ends an input (a closed, drained queue), ``CancelledError`` refuses work
on a closed queue, ``DataLossError`` reports a corrupt record with its file and byte offset.
"""
from __future__ import annotations


class OpError(Exception):
    """Base of every error an input-pipeline operation raises (TF1's ``tf.errors.OpError``)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class OutOfRangeError(OpError):
    """The input is exhausted: dequeue from a closed queue holding too few elements."""


class CancelledError(OpError):
    """The operation was cancelled: enqueue on a closed queue, or a pending enqueue cancelled."""


class DeadlineExceededError(OpError, TimeoutError):
    """A blocking call's ``timeout`` ran out before it could complete."""


class NotFoundError(OpError, FileNotFoundError):
    """A file (or other entity) the operation needs does not exist, e.g. a reader's missing file."""


class InvalidArgumentError(OpError, ValueError):
    """A value does not match what the operation declared (dtype, shape, key)."""


class DataLossError(OpError, IOError):
    """Unrecoverable data corruption: a bad CRC, a truncated record or file."""


class UnknownError(OpError):
    """An error raised in another thread or process whose type could not be rebuilt here."""


__all__ = [
    "OpError",
    "OutOfRangeError",
    "CancelledError",
    "DeadlineExceededError",
    "NotFoundError",
    "InvalidArgumentError",
    "DataLossError",
    "UnknownError",
]
