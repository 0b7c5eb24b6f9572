"""Faults end cleanly: a killed consumer or producer, a silent or hostile peer; nothing is left behind.

Kill tests are bounded in time (they poll for state against generous deadlines) and check for
leaks: processes (reaped, or gone from /proc), file descriptors, threads and /dev/shm entries.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Client
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import loaders
from loaders import CancelledError, Coordinator, FIFOQueue, OutOfRangeError, QueueRunner, UnknownError, _remote
from loaders.queue_runner import _ORPHAN_GRACE_SECS

REPO = Path(loaders.__file__).resolve().parents[1]


def _wait_until(predicate, timeout: float, what) -> None:
    """Poll ``predicate`` until it holds; after ``timeout`` seconds fail with ``what`` (text, or a callable giving it)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout} s: {what()}" if callable(what) else f"after {timeout} s: {what}")
        time.sleep(0.05)


def _proc_stat(pid: int):
    """(state, start time) of process ``pid`` from /proc, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], fields[19]


def _running(pid: int, started: str) -> bool:
    """Whether the process ``pid`` that started at ``started`` has not exited (a zombie has)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[1] == started and stat[0] not in "ZX"


def _fds() -> set:
    """This process's open descriptors as (number, target), leaving out the listing's own."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:  # the listing's own descriptor, closed already
            continue
        if target != f"/proc/{os.getpid()}/fd":
            fds.add((name, target))
    return fds


def _shm_of(pids) -> set:
    """The /dev/shm entries naming one of ``pids`` (torch's segments carry their creator's pid)."""
    return {name for name in os.listdir("/dev/shm") if any(f"_{pid}_" in name for pid in pids)}


class _Snapshot:
    """This process's descriptors and threads, to compare with once a test's processes ended."""

    def __init__(self) -> None:
        self.fds = _fds()
        self.threads = set(threading.enumerate())

    def new_threads(self) -> list:
        """Runner and serving threads started since (the one owner watch per process stays, by design)."""
        return [t for t in threading.enumerate() if t not in self.threads
                and t.name.startswith(("QueueRunner-", "loaders-remote-serve"))]

    def assert_released(self, processes) -> None:
        """Every process reaped and closed, no thread, descriptor or /dev/shm entry left."""
        _wait_until(lambda: not self.new_threads(), 30, lambda: f"threads left: {self.new_threads()}")
        pids = [os.getpid()] + [process.pid for process in processes]
        for process in processes:
            process.join(30)
            assert process not in multiprocessing.active_children()
            with pytest.raises(ChildProcessError):  # reaped: no zombie
                os.waitpid(process.pid, os.WNOHANG)
            process.close()
        _wait_until(lambda: _fds() <= self.fds, 30, lambda: f"descriptors left open: {sorted(_fds() - self.fds)}")
        assert not _shm_of(pids)


# -- a consumer killed while its producer processes run -----------------------------------------

CONSUMER = r'''
import sys, threading, time
import torch
from loaders import Coordinator, FIFOQueue, OpError, QueueRunner, _remote

method, count, mode = sys.argv[-3], int(sys.argv[-2]), sys.argv[-1]  # spawned producers see them too
if mode == "watch only":  # the descriptors a fork child inherits stay open: only the owner watch helps
    _remote._close_inherited = lambda server: None
if mode == "descriptors only":  # the owner watch never looks: only closing inherited descriptors helps
    _remote._OWNER_POLL_SECS = 1e6


class Producer:
    """Enqueues its index forever; odd ones, once they have, wait for the stop; stubborn ones ignore errors."""

    def __init__(self, queue, coord, index):
        self.queue, self.coord, self.index, self.sent = queue, coord, index, False

    def __call__(self):
        try:
            if self.index % 2 and self.sent:
                self.coord.wait_for_stop()
            self.queue.enqueue(self.index)
            self.sent = True
        except OpError:
            if mode != "stubborn":
                raise
            time.sleep(0.05)


if __name__ == "__main__":
    queue = FIFOQueue(capacity=2, dtypes=torch.int64, shapes=[])
    coord = Coordinator()
    ops = [Producer(queue, coord, i) for i in range(count)]
    processes = QueueRunner(queue, ops, use_processes=True, start_method=method).create_threads(coord, start=True)
    seen = set()
    while len(seen) < count:  # every producer has called this process
        seen.add(int(queue.dequeue(timeout=120)))
    print(*[p.pid for p in processes], flush=True)
    threading.Event().wait()  # blocked, with the queue full, until killed
'''


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    """The child's first line of output, failing after ``timeout`` seconds."""
    lines: list = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines or not lines[0]:
        pytest.fail(f"the consumer printed no producer pids within {timeout} s (exit code {process.poll()})")
    return lines[0].decode()


def _kill_the_consumer(script: Path, start_method: str, producers: int, mode: str, deadline: float) -> None:
    """Run CONSUMER, SIGKILL it once its producers run, then wait for every producer to exit."""
    script.write_text(CONSUMER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    consumer = subprocess.Popen([sys.executable, str(script), start_method, str(producers), mode],
                                stdout=subprocess.PIPE, env=env)
    pids: list = []
    started: dict = {}
    try:
        pids = [int(pid) for pid in _read_line(consumer, 180).split()]
        started = {pid: _proc_stat(pid)[1] for pid in pids}
        assert len(pids) == producers and all(_running(pid, started[pid]) for pid in pids)
        os.kill(consumer.pid, signal.SIGKILL)
        consumer.wait(30)

        def alive() -> list:
            return [pid for pid in pids if _running(pid, started[pid])]

        _wait_until(lambda: not alive(), deadline, lambda: f"producers still running: {alive()}")
        assert not _shm_of([consumer.pid] + pids)
    finally:
        for pid in pids:
            if pid in started and _running(pid, started[pid]):
                os.kill(pid, signal.SIGKILL)
        consumer.kill()
        consumer.wait()
        consumer.stdout.close()


@pytest.mark.parametrize("mode", ["both", "watch only", "descriptors only"])
def test_producers_exit_when_their_consumer_is_killed(tmp_path, mode):
    _kill_the_consumer(tmp_path / "consumer.py", "fork", 3, mode, deadline=15)


def test_producers_that_ignore_errors_exit_after_a_grace_period(tmp_path):
    _kill_the_consumer(tmp_path / "consumer.py", "fork", 2, "stubborn", deadline=15 + _ORPHAN_GRACE_SECS)


@pytest.mark.slow
def test_spawned_producers_exit_when_their_consumer_is_killed(tmp_path):
    _kill_the_consumer(tmp_path / "consumer.py", "spawn", 2, "both", deadline=15)


# -- the only producer process killed while the consumer waits ----------------------------------

class EnqueueThenHang:
    """Enqueues 0..n-1, then blocks forever (until killed)."""

    def __init__(self, queue, n):
        self.queue, self.n, self.sent = queue, n, 0

    def __call__(self):
        if self.sent == self.n:
            threading.Event().wait()
        self.queue.enqueue(self.sent)
        self.sent += 1


DEQUEUES = {
    "dequeue": lambda queue: queue.dequeue(timeout=30),
    "dequeue_many": lambda queue: queue.dequeue_many(2, timeout=30),
    "dequeue_up_to": lambda queue: queue.dequeue_up_to(2, timeout=30),
}


def _kill_once_waiting(queue, process) -> None:
    _wait_until(lambda: len(queue._core._dequeuers) > 0, 30, "the consumer never waited")
    os.kill(process.pid, signal.SIGKILL)


def _prepare(start_method: str) -> None:
    if start_method == "spawn":  # started once per process, for good: not a leak of this test
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()


@pytest.mark.parametrize("start_method,dequeue", [
    ("fork", "dequeue"), ("fork", "dequeue_many"), ("fork", "dequeue_up_to"),
    pytest.param("spawn", "dequeue", marks=pytest.mark.slow),
])
def test_a_killed_producer_wakes_the_waiting_consumer_with_its_error(start_method, dequeue):
    _prepare(start_method)
    queue, coord = FIFOQueue(4, torch.int64, shapes=[]), Coordinator()
    runner = QueueRunner(queue, [EnqueueThenHang(queue, 2)], use_processes=True, start_method=start_method)
    before = _Snapshot()
    (process,) = runner.create_threads(coord, start=True)
    assert [int(queue.dequeue(timeout=120)) for _ in range(2)] == [0, 1]
    killer = threading.Thread(target=_kill_once_waiting, args=(queue, process))
    killer.start()
    death = rf"process {process.name} \(pid {process.pid}\) was killed by signal SIGKILL without reporting"
    with pytest.raises(UnknownError, match=death):
        DEQUEUES[dequeue](queue)
    killer.join()
    assert coord.wait_for_stop(30)
    with pytest.raises(UnknownError, match=death):
        DEQUEUES[dequeue](queue)  # and every later one
    with pytest.raises(CancelledError):
        queue.enqueue(9)
    with pytest.raises(UnknownError, match=death):
        coord.join([process], stop_grace_period_secs=10)
    before.assert_released([process])


def test_elements_left_by_a_killed_producer_are_dequeued_before_its_error():
    queue, coord = FIFOQueue(4, torch.int64, shapes=[]), Coordinator()
    (process,) = QueueRunner(queue, [EnqueueThenHang(queue, 3)], use_processes=True).create_threads(coord, start=True)
    _wait_until(lambda: queue.size() == 3, 60, "the producer never filled the queue")
    os.kill(process.pid, signal.SIGKILL)
    assert coord.wait_for_stop(30) and queue.is_closed()
    assert queue.dequeue_up_to(2).tolist() == [0, 1] and queue.dequeue_up_to(2).tolist() == [2]
    with pytest.raises(UnknownError, match=f"pid {process.pid}"):
        queue.dequeue_up_to(2)
    with pytest.raises(UnknownError, match=f"pid {process.pid}"):
        coord.join([process], stop_grace_period_secs=10)


def _fail_from_child(queue) -> None:
    queue._fail(UnknownError("the producer's process died"))


def test_a_queue_failed_through_a_proxy_raises_in_its_owner():
    queue = FIFOQueue(4, torch.int64, shapes=[])
    queue.enqueue(1)
    queue.close()  # failing a closed queue still replaces its OutOfRangeError
    process = mp.get_context("fork").Process(target=_fail_from_child, args=(queue,))
    process.start()
    process.join(60)
    assert process.exitcode == 0 and queue.is_closed()
    assert int(queue.dequeue()) == 1
    with pytest.raises(UnknownError, match="the producer's process died"):
        queue.dequeue_many(1)


class EnqueueThenExit:
    """Enqueues one value, then ends its process at once with code 0, reporting nothing."""

    def __init__(self, queue, value):
        self.queue, self.value = queue, value

    def __call__(self):
        self.queue.enqueue(self.value)
        os._exit(0)


class CountAfter:
    """Once ``gate`` is set: enqueues 0..n-1, then reports the input exhausted."""

    def __init__(self, queue, n, gate):
        self.queue, self.n, self.gate, self.i = queue, n, gate, 0

    def __call__(self):
        self.gate.wait()
        if self.i == self.n:
            raise OutOfRangeError("done")
        self.queue.enqueue(self.i)
        self.i += 1


def _drain(queue) -> list:
    got = []
    while True:
        try:
            got.append(int(queue.dequeue(timeout=60)))
        except OutOfRangeError:
            return got


def test_a_clean_unreported_exit_leaves_the_queue_open_for_the_other_ops():
    queue, coord = FIFOQueue(4, torch.int64, shapes=[]), Coordinator()
    gate = mp.get_context("fork").Event()
    runner = QueueRunner(queue, [EnqueueThenExit(queue, 100), CountAfter(queue, 3, gate)], use_processes=True)
    quiet, counter = runner.create_threads(coord, start=True)
    assert int(queue.dequeue(timeout=60)) == 100
    _wait_until(lambda: runner._runs == 1, 30, "the quiet exit was never counted")  # seen by the runner's watch
    gate.set()
    assert _drain(queue) == [0, 1, 2]  # the queue stayed open, then closed when the last op ran out
    coord.join([quiet, counter], stop_grace_period_secs=10)
    assert quiet.exitcode == counter.exitcode == 0


def test_a_clean_unreported_exit_of_the_last_op_closes_the_queue():
    queue, coord = FIFOQueue(4, torch.int64, shapes=[]), Coordinator()
    processes = QueueRunner(queue, [EnqueueThenExit(queue, 7)], use_processes=True).create_threads(coord, start=True)
    assert _drain(queue) == [7]
    coord.join(processes, stop_grace_period_secs=10)


# -- the listener: silent, stopped and unauthenticated peers ------------------------------------

def _enqueue(queue, value) -> None:
    queue.enqueue(value)


def _connect_and_stop(address) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(address)
        os.kill(os.getpid(), signal.SIGSTOP)


def test_a_silent_or_stopped_peer_does_not_block_other_connections():
    context = mp.get_context("fork")
    queue = FIFOQueue(4, torch.int64, shapes=[])
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(queue._ref.address)
    stopped = context.Process(target=_connect_and_stop, args=(queue._ref.address,))
    producer = None
    try:
        stopped.start()
        _wait_until(lambda: (_proc_stat(stopped.pid) or "?")[0] == "T", 60, "the peer never stopped")
        producer = context.Process(target=_enqueue, args=(queue, 7))
        producer.start()
        assert int(queue.dequeue(timeout=30)) == 7
        producer.join(30)
        assert producer.exitcode == 0
    finally:
        silent.close()
        for process in filter(None, [stopped, producer]):
            process.kill()
            process.join()


def test_a_peer_that_does_not_authenticate_in_time_is_dropped(monkeypatch):
    monkeypatch.setattr(_remote, "_AUTH_TIMEOUT_SECS", 0.5)
    queue = FIFOQueue(4, torch.int64, shapes=[])
    before = _Snapshot()
    with socket.socket(socket.AF_UNIX) as silent:
        silent.settimeout(30)  # the server must close within that
        silent.connect(queue._ref.address)
        received = b""
        while chunk := silent.recv(4096):
            received += chunk
    assert b"#CHALLENGE#" in received  # the server spoke first, then hung up
    before.assert_released([])


def test_a_client_with_a_wrong_authkey_is_refused():
    queue = FIFOQueue(4, torch.int64, shapes=[])
    before = _Snapshot()
    with pytest.raises(multiprocessing.AuthenticationError):
        Client(queue._ref.address, family="AF_UNIX", authkey=b"not the key")
    before.assert_released([])


class CreatesFile:
    """Unpickling this creates a file: the proof that something was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_nothing_is_unpickled_before_authentication(tmp_path):
    queue = FIFOQueue(4, torch.int64, shapes=[])
    marker = tmp_path / "unpickled"
    payload = b"D" + pickle.dumps((queue._ref.oid, "size", (CreatesFile(str(marker)),)))
    pickle.loads(payload[1:])[2][0].close()  # the payload does what it says...
    assert marker.exists() and len(payload) < 256  # ...and is read as the handshake's answer
    marker.unlink()
    before = _Snapshot()
    conn = Client(queue._ref.address, family="AF_UNIX")  # no handshake: the payload comes first
    received = []
    try:
        conn.send_bytes(payload)
        while True:
            assert conn.poll(30), "the server neither answered nor hung up"
            try:
                received.append(conn.recv_bytes())
            except EOFError:
                break
    finally:
        conn.close()
    assert received[0].startswith(b"#CHALLENGE#") and received[-1] == b"#FAILURE#"
    assert not marker.exists()
    before.assert_released([])
