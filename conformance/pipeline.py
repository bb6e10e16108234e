"""Checker: consumes one step's observation at a time, in order, inline or on a second thread.

On large models the checks of a step (oracles, comparisons, JSONL) cost about as much as the
frameworks' own step, and both are loops in compiled code or NumPy that release the GIL. On a thread
they run while the frameworks take the next step. The queue holds at most one observation, so at most
three steps' arrays are alive at once whatever the number of steps (memory stays flat), and a single
consumer keeps trackers and the JSONL in step order: the records are byte-identical to an inline run
(tests/test_runner.py checks this).
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable


class Checker:
    def __init__(self, process: Callable[[Any], None], threaded: bool):
        self.process = process
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        if threaded:
            self.queue: queue.Queue = queue.Queue(maxsize=1)
            self.thread = threading.Thread(target=self._consume, name="conformance-checker", daemon=True)
            self.thread.start()

    def submit(self, observation: Any) -> None:
        """Check one step (inline), or hand it to the thread; a failure there surfaces here."""
        if self.thread is None:
            self.process(observation)
            return
        self._raise_if_failed()
        self.queue.put(observation)

    def close(self) -> None:
        """Wait until every submitted step is checked; re-raise what the thread raised, if anything."""
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise RuntimeError("the step checker failed (a harness bug, not a framework result)") from self.error

    def _consume(self) -> None:
        while (observation := self.queue.get()) is not None:
            if self.error is None:  # after a failure, drain without work so submit() never blocks
                try:
                    self.process(observation)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    self.error = exc
