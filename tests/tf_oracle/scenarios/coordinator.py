"""Scenarios from tensorflow/python/training/coordinator_test.py, plus edge cases around them.

``tf.train.Coordinator`` is plain Python in TF too, so each program is written once (``program``)
and run with either side's classes. Threads wait on events, never on sleeps, so that the
programs behave the same on a loaded machine. LooperThread's tests are left out: loaders has no
LooperThread.
"""
from __future__ import annotations

import sys
import threading
import types

from harness import Scenario


def tf_api(tf):
    return types.SimpleNamespace(Coordinator=tf.train.Coordinator,
                                 OutOfRangeError=lambda text: tf.errors.OutOfRangeError(None, None, text))


def lo_api(lo):
    return types.SimpleNamespace(Coordinator=lo.Coordinator, OutOfRangeError=lo.OutOfRangeError)


class Same:
    """A scenario whose program is the same on both sides: ``program(api, rec)``."""

    def tf(self, tf, rec):
        self.program(tf_api(tf), rec)

    def lo(self, lo, rec):
        self.program(lo_api(lo), rec)


def raised(step):
    """What ``step()`` raised as ``"Class: message"`` (BaseException included), or "no error"."""
    try:
        step()
    except BaseException as error:  # noqa: B036  (KeyboardInterrupt is one of the outcomes compared)
        return f"{type(error).__name__}: {error}"
    return "no error"


# TF's thread bodies (coordinator_test.py), events in place of sleeps.

def stop_on_event(coord, wait_for_stop, set_when_stopped):
    wait_for_stop.wait()
    coord.request_stop()
    set_when_stopped.set()


def raise_on_event(coord, wait_for_stop, set_when_stopped, ex, report_exception):
    try:
        wait_for_stop.wait()
        raise ex
    except Exception as e:  # TF's test catches RuntimeError, which lets its OutOfRangeError kill the thread
        if report_exception:
            coord.request_stop(e)
        else:
            coord.request_stop(sys.exc_info())
    finally:
        if set_when_stopped:
            set_when_stopped.set()


def raise_on_event_using_context_handler(coord, wait_for_stop, set_when_stopped, ex):
    with coord.stop_on_exception():
        wait_for_stop.wait()
        raise ex
    if set_when_stopped:
        set_when_stopped.set()


def report_in_handler(coord, ex, exc_info=False):
    """``coord.request_stop`` called from the handler of ``ex`` (what TF expects)."""
    try:
        raise ex
    except BaseException as e:  # noqa: B036
        coord.request_stop(sys.exc_info() if exc_info else e)


def wait_for_threads_to_register(coord, num_threads):
    done = threading.Event()
    while not done.wait(0.001):
        with coord._lock:
            if len(coord._registered_threads) == num_threads:
                return


def started(*threads):
    for t in threads:
        t.daemon = True
        t.start()
    return list(threads)


def stuck_thread(release):
    """A thread that stays alive until ``release`` is set (TF's SleepABit(10.0))."""
    return threading.Thread(target=release.wait, name="stuck")


# ---------------------------------------------------------------- CoordinatorTest


class testStopAPI(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        rec.run(coord.should_stop)
        rec.run(lambda: coord.wait_for_stop(0.01))
        rec.run(coord.request_stop)
        rec.run(coord.should_stop)
        rec.run(lambda: coord.wait_for_stop(0.01))


class testStopAsync(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        rec.run(coord.should_stop)
        rec.run(lambda: coord.wait_for_stop(0.1))
        wait_for_stop_ev, has_stopped_ev = threading.Event(), threading.Event()
        started(threading.Thread(target=stop_on_event, args=(coord, wait_for_stop_ev, has_stopped_ev)))
        rec.run(coord.should_stop)
        rec.run(lambda: coord.wait_for_stop(0.01))
        wait_for_stop_ev.set()
        has_stopped_ev.wait()
        rec.run(lambda: coord.wait_for_stop(0.05))
        rec.run(coord.should_stop)


class testJoin(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        go = threading.Event()
        threads = started(*[threading.Thread(target=go.wait) for _ in range(3)])
        go.set()
        rec.run(lambda: coord.join(threads))
        rec.put([t.is_alive() for t in threads])


class testJoinAllRegistered(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        go = threading.Event()

        def body():
            coord.register_thread(threading.current_thread())
            go.wait()

        threads = started(*[threading.Thread(target=body) for _ in range(3)])
        wait_for_threads_to_register(coord, 3)
        go.set()
        rec.run(coord.join)
        rec.put([t.is_alive() for t in threads])


class testJoinSomeRegistered(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        go = threading.Event()

        def registered():
            coord.register_thread(threading.current_thread())
            go.wait()

        threads = started(threading.Thread(target=registered), threading.Thread(target=go.wait),
                          threading.Thread(target=registered))
        wait_for_threads_to_register(coord, 2)
        go.set()
        rec.run(lambda: coord.join([threads[1]]))  # threads[1] is not registered: it is passed in
        rec.put([t.is_alive() for t in threads])


class testJoinGraceExpires(Same, Scenario):
    cases = [1e-10, 0.002, 1.0]

    def program(self, api, rec):
        coord = api.Coordinator()
        wait_for_stop_ev, has_stopped_ev, release = threading.Event(), threading.Event(), threading.Event()
        threads = started(threading.Thread(target=stop_on_event, args=(coord, wait_for_stop_ev, has_stopped_ev)),
                          stuck_thread(release))
        wait_for_stop_ev.set()
        has_stopped_ev.wait()
        rec.run(lambda: coord.join(threads, stop_grace_period_secs=self.case))
        release.set()


class testJoinWithoutGraceExpires(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        wait_for_stop_ev, has_stopped_ev, release = threading.Event(), threading.Event(), threading.Event()
        threads = started(threading.Thread(target=stop_on_event, args=(coord, wait_for_stop_ev, has_stopped_ev)),
                          stuck_thread(release))
        wait_for_stop_ev.set()
        has_stopped_ev.wait()
        rec.run(lambda: coord.join(threads, stop_grace_period_secs=0.05, ignore_live_threads=True))
        release.set()


class testJoinRaiseReportExcInfo(Same, Scenario):
    report_exception = False

    def program(self, api, rec):
        coord = api.Coordinator()
        ev_1, ev_2 = threading.Event(), threading.Event()
        threads = started(
            threading.Thread(target=raise_on_event, args=(coord, ev_1, ev_2, RuntimeError("First"), self.report_exception)),
            threading.Thread(target=raise_on_event, args=(coord, ev_2, None, RuntimeError("Too late"), self.report_exception)),
        )
        ev_1.set()
        rec.put(raised(lambda: coord.join(threads)))


class testJoinRaiseReportException(testJoinRaiseReportExcInfo):
    report_exception = True


class testJoinIgnoresOutOfRange(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        ev_1 = threading.Event()
        threads = started(threading.Thread(target=raise_on_event,
                                           args=(coord, ev_1, None, api.OutOfRangeError("First"), True)))
        ev_1.set()
        rec.run(lambda: coord.join(threads))
        rec.run(coord.should_stop)


class testJoinIgnoresMyExceptionType(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator(clean_stop_exception_types=(ValueError,))
        ev_1 = threading.Event()

        def body():
            with coord.stop_on_exception():
                ev_1.wait()
                raise ValueError("Clean stop")

        threads = started(threading.Thread(target=body))
        ev_1.set()
        rec.run(lambda: coord.join(threads))
        rec.run(coord.should_stop)


class testJoinRaiseReportExceptionUsingHandler(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        ev_1, ev_2 = threading.Event(), threading.Event()
        threads = started(
            threading.Thread(target=raise_on_event_using_context_handler, args=(coord, ev_1, ev_2, RuntimeError("First"))),
            threading.Thread(target=raise_on_event_using_context_handler, args=(coord, ev_2, None, RuntimeError("Too late"))),
        )
        ev_1.set()
        rec.put(raised(lambda: coord.join(threads)))


class testClearStopClearsExceptionToo(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        ev_1 = threading.Event()
        threads = started(threading.Thread(target=raise_on_event, args=(coord, ev_1, None, RuntimeError("First"), True)))
        ev_1.set()
        rec.put(raised(lambda: coord.join(threads)))
        coord.clear_stop()
        threads = started(threading.Thread(target=raise_on_event, args=(coord, ev_1, None, RuntimeError("Second"), True)))
        rec.put(raised(lambda: coord.join(threads)))


class testRequestStopRaisesIfJoined(Same, Scenario):
    exc_info = False

    def program(self, api, rec):
        coord = api.Coordinator()
        coord.join([])  # join the coordinator right away
        rec.put(raised(lambda: report_in_handler(coord, RuntimeError("Too late"), self.exc_info)))
        coord.clear_stop()  # then exceptions are handled normally
        report_in_handler(coord, RuntimeError("After clear"), self.exc_info)
        rec.put(raised(lambda: coord.join([])))


class testRequestStopRaisesIfJoined_ExcInfo(testRequestStopRaisesIfJoined):
    exc_info = True


# ---------------------------------------------------------------- edge cases


class testJoinWithoutThreadsOrStop(Same, Scenario):
    """Nothing to wait for: join returns at once, and the coordinator counts as joined."""

    def program(self, api, rec):
        coord = api.Coordinator()
        rec.run(coord.join)
        rec.run(lambda: coord.joined)
        rec.run(coord.should_stop)


class testJoinedProperty(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        rec.run(lambda: coord.joined)
        coord.request_stop()
        rec.run(lambda: coord.joined)
        rec.run(lambda: coord.join([]))
        rec.run(lambda: coord.joined)
        coord.clear_stop()
        rec.run(lambda: coord.joined)
        rec.run(coord.should_stop)
        rec.run(lambda: coord.wait_for_stop(0.01))


class testRaiseRequestedException(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        rec.put(raised(coord.raise_requested_exception))
        report_in_handler(coord, KeyError("reported"))
        rec.put(raised(coord.raise_requested_exception))
        rec.put(raised(coord.raise_requested_exception))  # still there: join has not run
        coord.clear_stop()
        rec.put(raised(coord.raise_requested_exception))


class testFirstReportedExceptionWins(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        report_in_handler(coord, ValueError("first"))
        report_in_handler(coord, KeyError("second"))
        rec.run(coord.should_stop)
        rec.put(raised(lambda: coord.join([])))


class testJoinRaisesAgain(Same, Scenario):
    """The reported exception stays until clear_stop: a second join raises it again."""

    def program(self, api, rec):
        coord = api.Coordinator()
        report_in_handler(coord, ValueError("kept"))
        rec.put(raised(lambda: coord.join([])))
        rec.put(raised(lambda: coord.join([])))


class testCleanStopAfterJoinDoesNotRaise(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        coord.join([])
        rec.put(raised(lambda: report_in_handler(coord, api.OutOfRangeError("clean"))))
        rec.put(raised(lambda: coord.request_stop()))
        rec.run(coord.should_stop)


class testCleanStopAfterAnErrorKeepsTheError(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        report_in_handler(coord, api.OutOfRangeError("done"))
        report_in_handler(coord, ValueError("after the stop: dropped"))
        rec.put(raised(lambda: coord.join([])))


class testNoCleanStopTypes(Same, Scenario):
    """clean_stop_exception_types=() makes even OutOfRangeError a reported error."""

    def program(self, api, rec):
        coord = api.Coordinator(clean_stop_exception_types=())
        with coord.stop_on_exception():
            raise api.OutOfRangeError("reported")
        rec.run(coord.should_stop)
        rec.put(raised(lambda: coord.join([])).split(":")[0])


class testStopOnExceptionWithoutError(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        with coord.stop_on_exception():
            pass
        rec.run(coord.should_stop)
        rec.put(raised(lambda: coord.join([])))


class testStopOnExceptionCatchesKeyboardInterrupt(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        with coord.stop_on_exception():
            raise KeyboardInterrupt("Ctrl-C")
        rec.run(coord.should_stop)
        rec.put(raised(lambda: coord.join([])))


class testExceptionWinsOverStragglers(Same, Scenario):
    """A reported exception is raised even when threads outlive the grace period."""

    def program(self, api, rec):
        coord = api.Coordinator()
        release = threading.Event()
        threads = started(stuck_thread(release))
        report_in_handler(coord, ValueError("reported"))
        rec.put(raised(lambda: coord.join(threads, stop_grace_period_secs=0.01)))
        release.set()


class testJoinForgetsRegisteredThreads(Same, Scenario):
    """After join, the registered threads are forgotten: a second join does not wait on them."""

    def program(self, api, rec):
        coord = api.Coordinator()
        release = threading.Event()
        thread = stuck_thread(release)
        coord.register_thread(thread)
        started(thread)
        coord.request_stop()
        rec.run(lambda: coord.join(stop_grace_period_secs=0.01))
        rec.run(lambda: coord.join(stop_grace_period_secs=0.01))
        release.set()


class testWaitForStopFromManyThreads(Same, Scenario):
    def program(self, api, rec):
        coord = api.Coordinator()
        seen = []
        lock = threading.Lock()

        def body():
            stopped = coord.wait_for_stop(30)
            with lock:
                seen.append(stopped)

        threads = started(*[threading.Thread(target=body) for _ in range(4)])
        coord.request_stop()
        rec.run(lambda: coord.join(threads))
        rec.put(seen)


class testRequestStopOutsideHandler(Same, Scenario):
    """TF records ``sys.exc_info()`` when ``ex`` is not a tuple, so outside an ``except`` block it
    reports a ValueError of its own; loaders reports the exception it was given."""

    differs = ("Coordinator.request_stop(ex) outside an except block: TF reports ValueError('ex must be a tuple "
               "or sys.exc_info must return the current exception'), loaders reports ex itself")

    def program(self, api, rec):
        coord = api.Coordinator()
        coord.request_stop(RuntimeError("not being handled"))
        rec.put(raised(lambda: coord.join([])).split(":")[0])
