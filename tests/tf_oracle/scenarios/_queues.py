"""What the queue scenarios share: one program for both sides, steps in background threads, settling.

Most of TF's queue tests port with no change at all: ``loaders`` keeps TF1's names, and a step is
a callable on both sides (``q.size``, ``functools.partial(q.dequeue_many, 4)``: TF's recorder
calls it to build the op, ours to run it). Such a scenario mixes in :class:`Program` and writes
``program(self, m, rec)`` once, ``m`` being ``tf.compat.v1`` or ``loaders``. Dtypes are given
by name (``"float32"``), which both accept.

TF's tests run blocking ops in threads and sleep until they block; here :class:`Background`
runs steps in a thread (TF's ops are built first, in the scenario's graph) and adds their
records when joined, and :func:`settle` waits until a queue has that many operations waiting:
polled on our queue, slept for TF's (whose records are cached).
"""
from __future__ import annotations

import copy
import threading
import time
from typing import Any

from harness import BLOCK_SECS

#: How long a scenario waits for a background step that should finish, or for a queue to settle.
JOIN_SECS = 15.0


class Program:
    """Mixin for a :class:`harness.Scenario` whose program is the same on both sides."""

    def program(self, m: Any, rec: Any) -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def tf(self, tf: Any, rec: Any) -> None:
        self.program(tf, rec)

    def lo(self, lo: Any, rec: Any) -> None:
        self.program(lo, rec)


def is_tf(rec: Any) -> bool:
    """Whether ``rec`` records the TensorFlow side (its steps run in a session)."""
    return hasattr(rec, "sess")


class Background:
    """Run steps, one after another, in a thread of their own; :meth:`join` adds their records."""

    def __init__(self, rec: Any, *steps: Any, unordered: bool = False) -> None:
        if is_tf(rec):  # a thread has its own default graph: build TF's ops here, in the scenario's
            steps = tuple(step() if callable(step) else step for step in steps)
        self._rec = copy.copy(rec)
        self._rec.steps = []
        self.values: list = []
        self._thread = threading.Thread(target=self._body, args=(steps, unordered), daemon=True)
        self._thread.start()

    def _body(self, steps: tuple, unordered: bool) -> None:
        for step in steps:
            self.values.append(self._rec.run(step, unordered))

    def running(self, rec: Any) -> None:
        """Record whether the steps are still running (use where they must be blocked by now)."""
        rec.put(self._thread.is_alive())

    def join(self, rec: Any, record: bool = True) -> list:
        """Wait for the steps to finish; record their outcomes (``record=False``: only a hang, for
        steps whose order among threads is free) and return their values."""
        self._thread.join(JOIN_SECS)
        if self._thread.is_alive():
            rec.put("background steps still running")
            return []
        if record:
            rec.steps.extend(self._rec.steps)
        return self.values


def value(rec: Any, step: Any) -> Any:
    """Run ``step`` without recording it; its value (for steps whose outcome is checked in Python)."""
    return rec._execute(step)


def settle(q: Any, enqueues: int = 0, dequeues: int = 0) -> None:
    """Wait until ``q`` has ``enqueues`` enqueues (and closes) and ``dequeues`` dequeues blocked.

    Our queue is polled; TF's cannot be looked into, so that side sleeps as TF's own tests do.
    """
    core = getattr(q, "_core", None)
    if core is None:
        time.sleep(BLOCK_SECS)
        return
    deadline = time.monotonic() + JOIN_SECS
    while (len(core._enqueuers), len(core._dequeuers)) != (enqueues, dequeues):
        if time.monotonic() > deadline:
            raise AssertionError(f"{q!r} never had {enqueues} enqueues and {dequeues} dequeues waiting")
        time.sleep(0.002)


def as_lists(values: Any) -> Any:
    """Tensors and arrays (or lists of them) as Python lists, for comparing collections in Python."""
    if isinstance(values, (list, tuple)):
        return [as_lists(v) for v in values]
    if isinstance(values, dict):
        return {key: as_lists(v) for key, v in values.items()}
    return values.tolist() if hasattr(values, "tolist") else values
