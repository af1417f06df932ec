"""Ctrl-C stops a run waiting on a hanging server even when Python delivers it where it is swallowed.

Python raises KeyboardInterrupt wherever the main thread is when the signal lands; in a finalizer (a __del__,
a generator closed by the garbage collector) it is printed as "Exception ignored" and lost, and a run waiting
on a hanging call then waits out the call's timeout (seen once in 790 default-suite runs under load). While a
command runs, Ctrl-C also sets a flag that the waiting loop checks on every poll."""

from __future__ import annotations

import signal
import threading

import pytest

from harness.util import calls


class SwallowsCtrlC:
    """An object whose finalizer receives the Ctrl-C: the KeyboardInterrupt is raised inside __del__ and ignored."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed Ctrl-C, on purpose
def test_a_ctrl_c_swallowed_by_a_finalizer_still_stops_the_wait():
    before = signal.getsignal(signal.SIGINT)  # Python's default; SIG_IGN under a shell's background job
    release = threading.Event()
    waiting = calls.concurrently(lambda item: release.wait(20) and item, [1], workers=1)
    try:
        with calls.ctrl_c_stops(), pytest.raises(KeyboardInterrupt):
            SwallowsCtrlC()  # collected at once; the KeyboardInterrupt raised in its __del__ is ignored
            next(waiting)  # without the flag: waits for the call (20 s), then returns its result
    finally:
        release.set()
        waiting.close()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back, whatever it was


def test_outside_a_command_the_flag_is_left_alone():
    calls.INTERRUPTED.clear()
    assert list(calls.concurrently(lambda item: item * 2, [1, 2], workers=2))  # nothing set, nothing raised
    assert not calls.INTERRUPTED.is_set()
