"""Concurrent calls to a server (engines and judges over HTTP), stoppable at once.

`concurrently(fn, items, workers)` runs `fn` on every item in `workers` daemon threads and
yields `(index, result, error)` as calls finish. When the consumer stops (Ctrl-C, an error,
closing the generator), no queued call starts any more and the process does not wait for the
calls still in flight: the threads are daemons (a `ThreadPoolExecutor` would join every worker
at exit, i.e. wait out each hanging call's timeout and retries). What finished was already
yielded, and so written by the caller.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
POLL_S = 0.2  # how often a waiting consumer wakes up (so Ctrl-C is seen at once)
# Set by Ctrl-C (`ctrl_c_stops`): Python raises KeyboardInterrupt wherever the main thread happens to be, and
# where that is a finalizer (a __del__, a generator closed by the garbage collector) it is printed as "ignored"
# and lost. A waiting consumer checks this flag on every poll, so such a Ctrl-C still stops the wait.
INTERRUPTED = threading.Event()


@contextmanager
def ctrl_c_stops() -> Iterator[None]:
    """While the block runs (main thread only), Ctrl-C also sets INTERRUPTED before raising KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupted(signum: int, frame: Any) -> None:
        INTERRUPTED.set()
        raise KeyboardInterrupt

    INTERRUPTED.clear()
    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


Outcome = tuple[int, Any, BaseException | None]  # (the item's index, fn's result, or the exception it raised)


def concurrently(fn: Callable[[T], Any], items: Sequence[T], workers: int) -> Iterator[Outcome]:
    todo: queue.SimpleQueue[tuple[int, T]] = queue.SimpleQueue()
    done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    for pair in enumerate(items):
        todo.put(pair)
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                i, item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((i, fn(item), None))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which decides
                done.put((i, None, exc))

    for _ in range(max(1, min(workers, len(items)))):
        threading.Thread(target=work, daemon=True, name="harness-call").start()
    try:
        for _ in range(len(items)):
            while True:
                try:
                    yield done.get(timeout=POLL_S)
                    break
                except queue.Empty:
                    if INTERRUPTED.is_set():  # a Ctrl-C whose KeyboardInterrupt a finalizer swallowed
                        raise KeyboardInterrupt from None
                    continue
    finally:
        stop.set()
