"""``SharedMemoryDataLoader``: ``torch.utils.data.DataLoader`` whose workers hand batches over
through reused shared memory.

PyTorch's workers send each batch through a ``multiprocessing.Queue``: every tensor gets a new
shared-memory segment, its file descriptor crosses through a connection of its own, and the main
process maps it, costing about as much per batch as decoding a batch of small records. Here each
worker owns a pool of arenas (``loaders._channel``'s: shared memory mapped once by both sides,
their file descriptors passed once). A batch is collated straight into a free arena (its stacked
tensors allocated there, as PyTorch's workers allocate them in a new segment), only its place
crosses the worker's socket, and the main process hands out tensors that view the arena; once the
last of a batch's tensors is gone, the arena goes back to its worker for another batch; when
an epoch's workers stop, their idle arenas are lent to the next epoch's (memory already faulted
in, not new pages). A
program that keeps batches keeps their arenas, and the worker makes new ones meanwhile; a
``collate_fn`` that keeps what it returned must keep a copy, since that memory is used again.

It is a ``DataLoader`` (a subclass): the same arguments and checks, samplers, ``collate_fn``,
``worker_init_fn``, ``get_worker_info()`` in the workers, seeds, ``persistent_workers``,
``timeout``, ``pin_memory``, the same order of batches and the workers' exceptions re-raised in
the main process. With ``num_workers=0`` it is PyTorch's loader. When ``batch_size`` is set and
no ``collate_fn`` given, records are collated by :func:`loaders.tfrecord.collate.collate_ragged`
(PyTorch's ``default_collate`` with byte strings as one ``RaggedBytes``), and a ``TFRecordDataset``'s
workers decode whole batches instead where those come out the same (``TFRecordDataset.batched``).
"""
from __future__ import annotations

import array
import gc
import inspect
import multiprocessing
import os
import pickle
import random
import threading
import weakref
from collections import deque
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import torch
import torch.utils.data
from torch.utils.data import IterableDataset, default_convert
from torch.utils.data._utils import pin_memory as _pin_memory
# PyTorch's own pieces of its worker loop, so that workers here fetch, seed and describe
# themselves exactly as its workers do.
from torch.utils.data._utils import worker as _torch_worker
from torch.utils.data.dataloader import _DatasetKind

from loaders import _remote
from loaders._channel import Channel
from loaders.tfrecord import batches
from loaders.tfrecord.collate import collate_ragged
from loaders.tfrecord.dataset import TFRecordDataset

_STOP, _FREE, _TASK, _EPOCH, _LEND = b"S", b"F", b"T", b"E", b"L"
_BATCH, _END, _ERROR, _FATAL = 0, 1, 2, 3
_JOIN_SECONDS = 5.0
_WATCH_SECONDS = 1.0  # how often a waiting worker checks that the main process is still there
_SIGNATURE = inspect.signature(torch.utils.data.DataLoader.__init__)


class SharedMemoryDataLoader(torch.utils.data.DataLoader):
    """A ``torch.utils.data.DataLoader`` (same arguments) whose ``num_workers`` worker processes
    deliver batches through reused shared-memory arenas instead of new segments per tensor."""

    def __init__(self, dataset: Any, batch_size: Optional[int] = 1, *args: Any, **kwargs: Any) -> None:
        given = _SIGNATURE.bind(self, dataset, batch_size, *args, **kwargs).arguments
        super().__init__(dataset, batch_size, *args, **kwargs)
        if given.get("collate_fn") is None and self.batch_size is not None:
            self.collate_fn = collate_ragged
        self._arena_pool = _ArenaPool()
        weakref.finalize(self, self._arena_pool.close)

    def _get_iterator(self) -> Any:
        if self.num_workers == 0:
            return super()._get_iterator()
        self.check_worker_number_rationality()
        return _WorkerIterator(self)


class _WorkerIterator:
    """Starts the workers, hands out tasks (map-style datasets), receives batches in order."""

    def __init__(self, loader: SharedMemoryDataLoader) -> None:
        self._workers: list[_Worker] = []
        self._iterable = isinstance(loader.dataset, IterableDataset)
        auto_collation = loader.batch_sampler is not None
        self._index_sampler = loader.batch_sampler if auto_collation else loader.sampler
        self._timeout = loader.timeout
        self._pin = loader.pin_memory and torch.cuda.is_available()
        self._persistent = loader.persistent_workers
        window = loader.prefetch_factor or 2
        base_seed = int(torch.empty((), dtype=torch.int64).random_(generator=loader.generator).item())
        context = loader.multiprocessing_context or multiprocessing.get_context()
        self._pool = loader._arena_pool
        self._pool.limit = loader.num_workers * (window + 1)
        batched = _decoding_batches(loader)
        if batched is not None:  # the dataset's own batches, equal to the records collated
            job = _Job(batched, True, False, None, default_convert, False, loader.num_workers, base_seed,
                       loader.worker_init_fn)
        else:
            job = _Job(loader.dataset, self._iterable, auto_collation, loader.batch_size, loader.collate_fn,
                       loader.drop_last, loader.num_workers, base_seed, loader.worker_init_fn)
        for worker_id in range(loader.num_workers):
            ours, theirs = context.Pipe(duplex=True)
            process = context.Process(target=_worker_main, args=(theirs, job, worker_id, window),
                                      name=f"loaders-worker-{worker_id}", daemon=True)
            process.start()
            theirs.close()
            self._workers.append(_Worker(ours, process, self._pool))
            self._workers[-1].lend(self._pool.take(window + 1))
        self._window, self._epoch = window, 0
        self._start_epoch()

    def _reset(self, loader: Any) -> None:
        """Another epoch on persistent workers (``DataLoader.__iter__`` calls this)."""
        if not self._workers:  # stopped by an error: start again
            self.__init__(loader)
            return
        while not self._iterable and self._received < self._sent:  # results of an abandoned epoch
            self._workers[self._received % len(self._workers)].receive(self._timeout)
            self._received += 1
        self._epoch += 1
        for worker in self._workers:
            worker.post(_EPOCH, self._epoch)  # what an iterable's workers still send of the last epoch is skipped
        self._start_epoch()

    def _start_epoch(self) -> None:
        self._cycle = deque(range(len(self._workers)))  # iterable: the workers not yet exhausted, in turn
        self._sampler_iter = None if self._iterable else iter(self._index_sampler)
        self._sent = self._received = 0
        for _ in range(self._window * len(self._workers)):
            if not self._dispatch():
                break

    def _dispatch(self) -> bool:
        """Send the sampler's next indices to the next worker in turn; False when there are none."""
        indices = next(self._sampler_iter, None) if self._sampler_iter is not None else None
        if indices is None:
            self._sampler_iter = None
            return False
        self._workers[self._sent % len(self._workers)].post(_TASK, indices)
        self._sent += 1
        return True

    def __iter__(self) -> "_WorkerIterator":
        return self

    def __len__(self) -> int:
        return len(self._index_sampler)

    def __next__(self) -> Any:
        try:
            batch = self._next_batch()
        except StopIteration:
            if not self._persistent:
                self._shutdown()
            raise
        except _WorkerError as error:  # the iterator stays usable, as PyTorch's does
            raise error.exception from None
        except BaseException:
            self._shutdown()
            raise
        return _pin_memory.pin_memory(batch) if self._pin else batch

    def _next_batch(self) -> Any:
        while True:
            if not self._workers or (self._iterable and not self._cycle) \
                    or (not self._iterable and self._received == self._sent):
                raise StopIteration
            number = self._cycle[0] if self._iterable else self._received % len(self._workers)
            epoch, kind, value = self._workers[number].receive(self._timeout)
            if epoch != self._epoch:
                continue  # sent before the worker began this epoch
            if kind == _FATAL:
                raise _remote.rebuild_exception(value)
            if self._iterable and kind == _END:
                self._cycle.popleft()
                continue
            if self._iterable:
                self._cycle.rotate(-1)
            else:
                self._received += 1
                self._dispatch()
            if kind == _ERROR:
                raise _WorkerError(_remote.rebuild_exception(value))
            return value

    def _shutdown(self) -> None:
        workers, self._workers = getattr(self, "_workers", []), []
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.join()
            worker.surrender()

    def __del__(self) -> None:
        self._shutdown()


def _decoding_batches(loader: SharedMemoryDataLoader) -> Optional[TFRecordDataset]:
    """A ``TFRecordDataset`` of records, collated by ``collate_ragged``, made to decode whole
    batches in the workers (about 1.6x faster, no collate) where the batches come out the same."""
    dataset = loader.dataset
    if not isinstance(dataset, TFRecordDataset) or loader.batch_sampler is None or loader.collate_fn is not collate_ragged:
        return None
    return dataset.batched(loader.batch_size, loader.drop_last)


class _WorkerError(Exception):
    """Carries an exception raised by the dataset in a worker out of ``_next_batch``."""

    def __init__(self, exception: BaseException) -> None:
        super().__init__(exception)
        self.exception = exception


class _ArenaPool:
    """A loader's arenas kept from one epoch's workers for the next one's: their memory is
    already faulted in, which a new arena's is not (a page fault each 4 KiB, zeroed)."""

    def __init__(self) -> None:
        self.free: list[tuple[int, Any]] = []  # (descriptor, mapping) of arenas no batch views
        self.limit = 0  # how many are kept: each worker's idle ones
        self._lock = threading.RLock()  # a batch may be dropped, and its arena put here, in any thread

    def put(self, arena: Optional[tuple[int, Any]]) -> None:
        if arena is None:
            return
        with self._lock:
            if len(self.free) < self.limit:
                self.free.append(arena)
                return
        os.close(arena[0])  # the mapping goes with its last reference

    def take(self, count: int) -> list[tuple[int, Any]]:
        with self._lock:
            taken, self.free = self.free[:count], self.free[count:]
        return taken

    def close(self) -> None:
        self.limit = 0
        for fd, _ in self.take(len(self.free)):
            os.close(fd)


class _Worker:
    """The main process's end of one worker: its socket, process and arenas."""

    def __init__(self, conn: Connection, process: Any, pool: _ArenaPool) -> None:
        self.conn, self.process = conn, process
        self._channel = Channel(conn, keep_descriptors=True)
        self._released: deque = deque()  # arenas whose batches are gone, not yet handed back
        self._pool, self._stopped = pool, False

    def lend(self, arenas: list[tuple[int, Any]]) -> None:
        """The worker's first message: arenas of an earlier epoch for it to use (numbers 0, 1, ...)."""
        try:
            self.conn.send_bytes(_LEND + array.array("Q", [len(mapping) for _, mapping in arenas]).tobytes())
            for fd, _ in arenas:
                reduction.send_handle(self.conn, fd, self.process.pid)
        except OSError:  # the worker is gone already: receive() reports it
            for arena in arenas:
                self._pool.put(arena)
            return
        for number, (fd, mapping) in enumerate(arenas):
            self._channel.adopt(number, fd, mapping)

    def _release(self, number: int) -> None:
        """The batch in arena ``number`` is gone: the arena goes back to the worker, or to the pool."""
        if self._stopped:
            self._pool.put(self._channel.detach(number))
        else:
            self._released.append(number)

    def surrender(self) -> None:
        """Once the worker has stopped: its arenas to the pool, those batches still view when they go."""
        self._stopped = True
        for arena in self._channel.detach_unviewed():
            self._pool.put(arena)

    def post(self, kind: bytes, value: Any = None) -> None:
        if self._released:
            self._free(0)
        self.conn.send_bytes(kind + pickle.dumps(value, pickle.HIGHEST_PROTOCOL))

    def _free(self, received: int) -> None:
        """Tell the worker it may send ``received`` more, and hand back the arenas released."""
        numbers = array.array("I")
        while self._released:
            numbers.append(self._released.popleft())
        self.conn.send_bytes(_FREE + bytes([received]) + numbers.tobytes())

    def receive(self, timeout: float) -> tuple:
        """The next ``(epoch, kind, value)`` this worker sends, its tensors viewing the worker's arena."""
        try:
            if timeout and not self.conn.poll(timeout):
                raise RuntimeError(f"DataLoader timed out after {timeout} seconds")
            message = self._channel.recv(release=self._release)
            self._free(1)
        except (EOFError, OSError):
            self.process.join(_JOIN_SECONDS)
            raise RuntimeError(f"DataLoader worker (pid {self.process.pid}) exited unexpectedly with exit code "
                               f"{self.process.exitcode}") from None
        return message

    def stop(self) -> None:
        try:
            self.conn.send_bytes(_STOP)
        except OSError:
            pass  # already gone
        self.conn.close()

    def join(self) -> None:
        self.process.join(_JOIN_SECONDS)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()


class _Job(NamedTuple):
    """What every worker needs to know (pickled to workers that are not forked)."""

    dataset: Any
    iterable: bool
    auto_collation: bool
    batch_size: Optional[int]
    collate_fn: Callable
    drop_last: bool
    num_workers: int
    base_seed: int
    init_fn: Optional[Callable[[int], None]]

    def fetcher(self) -> Any:
        kind = _DatasetKind.Iterable if self.iterable else _DatasetKind.Map
        return _DatasetKind.create_fetcher(kind, self.dataset, self.auto_collation, self.collate_fn, self.drop_last)


def _worker_main(conn: Connection, job: _Job, worker_id: int, window: int) -> None:
    """A worker: set up as PyTorch sets up its own, then fetch batches and send them while arenas are free."""
    # What the worker inherited from the main process leaves the garbage collector's view: a full
    # collection would otherwise write to every inherited object and copy-on-write fault in the
    # main process's whole heap (about 80 MB, 20k faults and 0.2 s a worker under torch).
    gc.freeze()
    torch.set_num_threads(1)
    seed = job.base_seed + worker_id
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(_torch_worker._generate_state(job.base_seed, worker_id))
    _torch_worker._worker_info = _torch_worker.WorkerInfo(id=worker_id, num_workers=job.num_workers, seed=seed,
                                                          dataset=job.dataset)
    batches.share_in_workers = False  # batches leave through the arenas, not torch.multiprocessing
    try:
        outbox = _Outbox(conn, window)
        job = job._replace(collate_fn=outbox.collating(job.collate_fn))
        try:
            if job.init_fn is not None:
                job.init_fn(worker_id)
            fetcher = job.fetcher()
        except Exception as error:
            outbox.send(0, _FATAL, _remote.exception_payload(error))
            while True:
                outbox.read(block=True)  # until told to stop
        _serve(outbox, job, fetcher)
    except (EOFError, OSError, KeyboardInterrupt, _Stop):
        pass  # the main process stopped this worker, or is gone
    finally:
        conn.close()


def _serve(outbox: "_Outbox", job: _Job, fetcher: Any) -> None:
    """Fetch and send batches: an iterable dataset's, epoch after epoch, or those of the tasks received."""
    whole_batch = [None] * job.batch_size if job.iterable and job.auto_collation else None
    while True:
        outbox.read(block=False)
        if outbox.restart:
            outbox.restart = False
            fetcher = job.fetcher()  # a new epoch: the dataset is iterated again
        index = whole_batch if job.iterable else outbox.next_task()
        epoch = outbox.epoch  # a map-style task that came after a new epoch's start belongs to it
        outbox.begin()
        try:
            value, kind = fetcher.fetch(index), _BATCH
        except StopIteration:
            outbox.send(epoch, _END, None)
            while not outbox.restart:  # an exhausted iterable waits for another epoch, or the stop
                outbox.read(block=True)
            continue
        except Exception as error:
            value, kind = _remote.exception_payload(error), _ERROR
        try:
            outbox.send(epoch, kind, value)
        except (EOFError, OSError):
            raise
        except Exception as error:  # a batch that cannot be pickled
            outbox.send(epoch, _ERROR, _remote.exception_payload(error))


class _Stop(Exception):
    """The main process asked this worker to stop."""


class _Outbox:
    """A worker's side: its arenas, and what the main process tells it (how many more it may
    send, arenas handed back, tasks, a new epoch, stop)."""

    def __init__(self, conn: Connection, window: int) -> None:
        self.conn = conn
        self._channel = Channel(conn)
        self._free = window  # batches it may send before the main process has received more
        self._idle: list[int] = []  # arenas handed back
        self._keep = window + 1  # idle arenas kept; more (after batches were kept) are retired
        self._spare: list[int] = []  # numbers of retired arenas, made again when needed
        self._arenas = 0  # how many numbers it has used
        self._current: Optional[int] = None  # the arena of the message being made
        self._tasks: deque = deque()
        self.epoch, self.restart = 0, False
        self._parent = os.getppid()
        self._adopt()

    def _adopt(self) -> None:
        """Take the arenas the main process lends (its first message), to use before making new ones."""
        message = self.conn.recv_bytes()
        if message[:1] != _LEND:
            raise _Stop
        for number, size in enumerate(array.array("Q", message[1:])):
            self._channel.adopt_own(number, reduction.recv_handle(self.conn), size)
            self._idle.append(number)
        self._arenas = len(self._idle)

    def read(self, block: bool) -> None:
        """Take in the main process's messages: all that wait, or (``block``) at least one."""
        while block or self.conn.poll():
            while block and not self.conn.poll(_WATCH_SECONDS):
                if os.getppid() != self._parent:
                    raise _Stop  # the main process is gone (its sockets may live on in other children)
            block = False
            message = self.conn.recv_bytes()
            kind = message[:1]
            if kind == _FREE:
                self._free += message[1]
                self._idle.extend(array.array("I", message[2:]))
                while len(self._idle) > self._keep:  # the memory of batches that were kept comes back
                    self._spare.append(self._idle.pop(0))
                    self._channel.retire(self._spare[-1])
            elif kind == _TASK:
                self._tasks.append(pickle.loads(message[1:]))
            elif kind == _EPOCH:
                self.epoch, self.restart = pickle.loads(message[1:]), True
            else:
                raise _Stop

    def next_task(self) -> Any:
        while not self._tasks:
            self.read(block=True)
        return self._tasks.popleft()

    def begin(self) -> None:
        """Start the next message in an arena handed back, or in a new one when none is."""
        if self._current is None:
            if self._idle:
                self._current = self._idle.pop()
            elif self._spare:
                self._current = self._spare.pop()
            else:
                self._current, self._arenas = self._arenas, self._arenas + 1
        self._channel.begin(self._current)

    def collating(self, collate_fn: Callable) -> Callable:
        """``collate_fn`` making the tensors it stacks in the message's arena (see :mod:`loaders.tfrecord.collate`)."""
        def collate(batch: Any) -> Any:
            batches.allocate_for_transfer = self._channel.allocate
            try:
                return collate_fn(batch)
            finally:
                batches.allocate_for_transfer = None
        return collate

    def send(self, epoch: int, kind: int, value: Any) -> None:
        """Send the message once the main process may take it."""
        while not self._free:
            self.read(block=True)
        if self._current is None:
            self.begin()
        self._channel.send((epoch, kind, value))
        self._current = None
        self._free -= 1


__all__ = ["SharedMemoryDataLoader"]
