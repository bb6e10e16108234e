"""Checker: consumes one step's observation at a time, in order, inline or on a second thread.

On large models the checks of a step (oracles, comparisons, JSONL) cost about as much as drawing the
next step's gradients, and both are loops in compiled code or NumPy that release the GIL. On a thread
the checks of step s run while step s+1's inputs are prepared; `wait()` is the barrier before the
frameworks whose values the checks read without a copy step again (they update their values in place).
Steps whose checks take longer (the float64 oracles) are copied instead, and the frameworks go on while
they are checked; where the inputs come faster than the checks (a replayed trace), the runner copies the
slowest framework's values and steps it before the barrier (stepping.ahead, from `view_seconds`).

Memory is bounded by design, not by the checker keeping up: at most `PENDING` observations wait for
the thread, and `submit` blocks (backpressure) until one is taken. A copied step holds a full copy of
every side's values, so without the bound a checker slower than the frameworks (a busy second core)
let copies pile up without end: measured at 100k parameters, peak RSS 862 MiB after 100 steps and
1,829 MiB after 3,000. With the bound, memory is the same after 100 or 100,000 steps, whatever the
machine's load. A single consumer keeps trackers and the JSONL in step order: the records are
byte-identical to an inline run (tests/engine/test_runner.py checks this).
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

# Observations waiting for the checker thread, at most. Two let the frameworks run one step ahead of a
# long oracle check and still have the next step queued; more only hold more copies (each is one
# model's parameters and state per side) without making the run faster, as the checker is the one
# consumer.
PENDING = 2
# Weight of the latest step in the running average of a check's seconds (view_seconds).
SMOOTHING = 0.2


class Checker:
    def __init__(self, process: Callable[[Any], None], threaded: bool, pending: int = PENDING):
        self.process = process
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.submitted = self.checked = self.last_view = 0  # sequence numbers
        self.progress = threading.Condition()
        self.view_seconds: float | None = None  # running average of a view-holding step's checks, seconds
        if threaded:
            self.queue: queue.Queue = queue.Queue(maxsize=pending)
            self.thread = threading.Thread(target=self._consume, name="conformance-checker", daemon=True)
            self.thread.start()

    def submit(self, observation: Any, holds_views: bool) -> None:
        """Check one step (inline), or hand it to the thread, waiting while `pending` steps are queued;
        a failure there surfaces here. `holds_views`: the observation reads arrays the frameworks will
        change (see wait)."""
        if self.thread is None:
            self.process(observation)
            return
        self._raise_if_failed()
        self.submitted += 1
        if holds_views:
            self.last_view = self.submitted
        self.queue.put((observation, holds_views))  # blocks while full: the thread drains it even after a failure

    def wait(self) -> None:
        """Return once every submitted step that holds views is checked: the frameworks may then change
        their arrays. Steps whose arrays were copied (the long oracle steps) may still be in progress."""
        if self.thread is not None:
            with self.progress:
                self.progress.wait_for(lambda: self.checked >= self.last_view or self.error is not None)
            self._raise_if_failed()

    def close(self) -> None:
        """Wait until every submitted step is checked; re-raise what the thread raised, if anything."""
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self._raise_if_failed()

    def _average(self, seconds: float) -> None:
        last = self.view_seconds
        self.view_seconds = seconds if last is None else last + SMOOTHING * (seconds - last)

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise RuntimeError("the step checker failed (a harness bug, not a framework result)") from self.error

    def _consume(self) -> None:
        while (entry := self.queue.get()) is not None:
            observation, holds_views = entry
            if self.error is None:  # after a failure, drain without work
                started = time.perf_counter()
                try:
                    self.process(observation)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    self.error = exc
                if holds_views:
                    self._average(time.perf_counter() - started)
            del observation, entry  # the copy goes now, not when the next one arrives
            with self.progress:
                self.checked += 1
                self.progress.notify_all()
