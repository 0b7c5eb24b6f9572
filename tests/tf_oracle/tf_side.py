"""Runs the scenarios' TF1 programs in a TensorFlow interpreter and writes their records as JSON.

``python tests/tf_oracle/tf_side.py --out records.json [--names FILE] [-k TEXT]``, run by the
oracle test with the interpreter named by ``LOADERS_TF_PYTHON``; by hand it shows what TF does
(``-k fifo --show``). Each scenario gets a fresh graph and session; a session's operations time
out (TF's own ``operation_timeout_in_ms``) so that an unexpected wait is a DeadlineExceededError,
and a scenario past its time limit is recorded as a hang.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

import tensorflow.compat.v1 as tf  # noqa: E402

tf.disable_v2_behavior()
tf.logging.set_verbosity(tf.logging.ERROR)

#: An operation waiting longer than this fails with DeadlineExceededError (a scenario's steps are short).
OPERATION_TIMEOUT_MS = 4000


class TFRecorder(harness.Recorder):
    """Steps are graph elements (or callables that build them) run in the scenario's session."""

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.sess = session

    def _fetches(self, x: Any) -> Any:
        return x() if callable(x) else x

    def _execute(self, x: Any) -> Any:
        fetches = self._fetches(x)
        return self.sess.run(fetches) if _runnable(fetches) else fetches

    def _blocked(self, x: Any) -> tuple:
        options = tf.RunOptions(timeout_in_ms=int(harness.BLOCK_SECS * 1000))
        try:
            return self.sess.run(self._fetches(x), options=options), False
        except tf.errors.DeadlineExceededError:
            return None, True


def _runnable(fetches: Any) -> bool:
    kinds = (tf.Tensor, tf.Operation, tf.SparseTensor, tf.RaggedTensor)
    leaves = tf.nest.flatten(fetches, expand_composites=False)
    return bool(leaves) and all(isinstance(leaf, kinds) for leaf in leaves)


def run_one(scenario: harness.Scenario) -> dict:
    """The record of the scenario's TF side, in a fresh graph and session."""
    graph = tf.Graph()
    config = tf.ConfigProto(operation_timeout_in_ms=OPERATION_TIMEOUT_MS)
    session = tf.Session(graph=graph, config=config)
    rec = TFRecorder(session)

    @contextlib.contextmanager
    def setup() -> Iterator[None]:
        with graph.as_default(), session.as_default():
            yield

    record = harness.execute(scenario, "tf", tf, rec, setup)
    if "hang" not in record:
        session.close()
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the records here (JSON)")
    parser.add_argument("--names", help="a file with one scenario name per line (default: all)")
    parser.add_argument("-k", default="", help="only scenarios whose name contains this")
    parser.add_argument("--show", action="store_true", help="print each record")
    args = parser.parse_args()
    every = harness.scenarios()
    names = Path(args.names).read_text().split() if args.names else sorted(every)
    records = {}
    for name in names:
        if args.k in name:
            records[name] = run_one(every[name])
            if args.show:
                print(name, json.dumps(records[name], indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps({"tensorflow": tf.__version__, "records": records}))


if __name__ == "__main__":
    main()
