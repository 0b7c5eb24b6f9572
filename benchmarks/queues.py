"""Queue throughput next to its peers: FIFOQueue vs queue.Queue between threads, and vs
torch.multiprocessing.Queue between processes (1 MB float32 tensors, and small items).

Targets: threads >= 0.8x queue.Queue; 1 MB tensors between processes >= 1.0x torch.multiprocessing.Queue.

    python benchmarks/queues.py [--items 200000] [--tensors 1000] [--repeat 5] [--start-method fork]
"""
from __future__ import annotations

import argparse
import os
import queue as std_queue
import statistics
import threading
import time
from typing import Any, Callable

import torch
import torch.multiprocessing as mp

import loaders

MB_FLOATS = 262_144  # 1 MB of float32


def _put(q: Any) -> Callable[[Any], None]:
    return q.enqueue if isinstance(q, loaders.QueueBase) else q.put


def _get(q: Any) -> Callable[[], Any]:
    return q.dequeue if isinstance(q, loaders.QueueBase) else q.get


def threads_items_per_s(make_queue: Callable[[], Any], items: int) -> float:
    """One producer thread, one consumer thread, ``items`` small tensors."""
    q, item = make_queue(), torch.zeros(4)
    put, get = _put(q), _get(q)

    def produce() -> None:
        for _ in range(items):
            put(item)

    producer = threading.Thread(target=produce)
    started = time.perf_counter()
    producer.start()
    for _ in range(items):
        get()
    producer.join()
    return items / (time.perf_counter() - started)


def _produce(q: Any, count: int, floats: int, done: Any) -> None:
    """A producer process: ``count`` fresh tensors; stays alive until the consumer is done
    (torch.multiprocessing.Queue hands file descriptors over from the live sender)."""
    torch.set_num_threads(1)
    put, base = _put(q), torch.randn(floats)
    for _ in range(count):
        put(base.clone())
    done.wait()


def _consume(q: Any, count: int, done: Any) -> None:
    """A consumer process (the queue's owner is the parent)."""
    get = _get(q)
    for _ in range(count):
        get()
    done.set()


def processes_rate(
    context: Any, make_queue: Callable[[], Any], count: int, floats: int, consumer_in_child: bool
) -> float:
    """Items/s from a producer to a consumer in another process (the parent is one of them)."""
    q, done = make_queue(), context.Event()
    if consumer_in_child:
        child = context.Process(target=_consume, args=(q, count, done))
        child.start()
        put, base = _put(q), torch.randn(floats)
        put(base.clone())
        started = time.perf_counter()
        for _ in range(count - 1):
            put(base.clone())
        done.wait()
    else:
        child = context.Process(target=_produce, args=(q, count, floats, done))
        child.start()
        get = _get(q)
        get()  # the clock starts once the child runs
        started = time.perf_counter()
        for _ in range(count - 1):
            get()
        done.set()
    elapsed = time.perf_counter() - started
    child.join()
    return (count - 1) / elapsed


def _compare(ours: Callable[[], float], peer: Callable[[], float], repeat: int) -> tuple:
    """Medians of ``repeat`` runs each, alternating the two so that drift hits both alike."""
    runs = [(ours(), peer()) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    """Run every case and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000, help="small tensors per thread run")
    parser.add_argument("--tensors", type=int, default=1000, help="1 MB tensors per process run")
    parser.add_argument("--small", type=int, default=5000, help="small tensors per process run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case; the median is shown")
    parser.add_argument("--start-method", default=mp.get_start_method(), choices=["fork", "spawn", "forkserver"])
    args = parser.parse_args()
    context = mp.get_context(args.start_method)

    rows = []
    ours, peer = _compare(
        lambda: threads_items_per_s(lambda: loaders.FIFOQueue(100, torch.float32, shapes=[4]), args.items),
        lambda: threads_items_per_s(lambda: std_queue.Queue(100), args.items),
        args.repeat,
    )
    rows.append(("threads: items/s, 1 -> 1, tensor items", "queue.Queue", ours, peer, 0.8))

    def fifo(floats: int) -> Callable[[], Any]:
        return lambda: loaders.FIFOQueue(4, torch.float32, shapes=[floats])

    for label, floats, count, scale, target in [
        ("processes: GB/s, 1 MB float32 tensors", MB_FLOATS, args.tensors, MB_FLOATS * 4 / 1e9, 1.0),
        ("processes: items/s, 16-byte tensors", 4, args.small, 1.0, None),
    ]:
        for consumer_in_child in (False, True):
            where = "child -> owner" if not consumer_in_child else "owner -> child"
            ours, peer = _compare(
                lambda: processes_rate(context, fifo(floats), count, floats, consumer_in_child),
                lambda: processes_rate(context, lambda: context.Queue(4), count, floats, consumer_in_child),
                args.repeat,
            )
            rows.append((f"{label}, {where}", "torch.multiprocessing.Queue", scale * ours, scale * peer, target))

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, start method {args.start_method}, "
          f"median of {args.repeat}")
    print()
    print("| case | FIFOQueue | peer | peer value | ratio | target |")
    print("|---|---:|---|---:|---:|---:|")
    for case, peer_name, ours, peer, target in rows:
        ratio = ours / peer
        verdict = "-" if target is None else f">= {target:.1f}x {'met' if ratio >= target else 'MISSED'}"
        print(f"| {case} | {ours:,.2f} | {peer_name} | {peer:,.2f} | {ratio:.2f}x | {verdict} |")


if __name__ == "__main__":
    main()
