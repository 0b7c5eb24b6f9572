"""The lecture's queue example (09_queue_example.py) ported line by line, then with producer processes.

A FIFOQueue of capacity 50 holds (4 floats, 1 label) rows; NUM_THREADS enqueue ops, run by a
QueueRunner, keep feeding it the whole data set while the training loop dequeues 100 samples;
then the Coordinator stops the producers and joins them. The second half runs the same ops in
torch.multiprocessing processes: the queue, pickled into them, sends its rows back through
shared memory.

    python examples/queue_example.py [--start-method fork|spawn|forkserver]
"""
from __future__ import annotations

import argparse
import functools
import time

import numpy as np
import torch

import loaders

N_SAMPLES = 1000
NUM_THREADS = 4
NUM_PROCESSES = 2


def run(use_processes: bool, start_method: str | None) -> None:
    """Build the lecture's queue and runner, take 100 samples, stop; print what came out."""
    # dummy data: N_SAMPLES rows of 4 features, each label 0 or 1
    all_data = 10 * np.random.randn(N_SAMPLES, 4) + 1
    all_target = np.random.randint(0, 2, size=N_SAMPLES)

    queue = loaders.FIFOQueue(capacity=50, dtypes=[torch.float32, torch.int32], shapes=[[4], []])
    # an op is a callable: a common practice is to enqueue all data at once, but dequeue one by one
    enqueue_op = functools.partial(queue.enqueue_many, [all_data, all_target])

    workers = NUM_PROCESSES if use_processes else NUM_THREADS
    qr = loaders.QueueRunner(queue, [enqueue_op] * workers, use_processes=use_processes, start_method=start_method)

    # create a coordinator, launch the queue runner threads (or processes)
    started = time.perf_counter()
    coord = loaders.Coordinator()
    enqueue_threads = qr.create_threads(coord=coord, start=True)
    labels = []
    for step in range(100):  # do 100 iterations
        if coord.should_stop():
            break
        one_data, one_label = queue.dequeue()
        labels.append(int(one_label))
    coord.request_stop()
    coord.join(enqueue_threads)

    kind = f"{workers} {'processes' if use_processes else 'threads'}"
    print(
        f"{kind:>11}: {len(labels)} samples in {time.perf_counter() - started:.2f} s, "
        f"last data {one_data.numpy().round(2)}, {sum(labels)} of label 1, queue closed: {queue.is_closed()}"
    )


def main() -> None:
    """Run the lecture's example with threads, then with processes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start-method", choices=["fork", "spawn", "forkserver"], default=None,
                        help="how the producer processes start (default: the platform's)")
    args = parser.parse_args()
    run(use_processes=False, start_method=None)
    run(use_processes=True, start_method=args.start_method)


if __name__ == "__main__":
    main()
