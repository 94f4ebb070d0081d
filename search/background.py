"""Work in a thread while the driver's main thread waits for Ray: Ray's start and stop are mostly
waiting for its processes, and only the main thread may put back the signal handlers they change,
so the work (reading the data before the sweep; the export and report after it) goes beside them.

Leaves out what the work is (prepare.py, results/run.py).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

R = TypeVar("R")


class Background(Generic[R]):
    """fn(*args, **kwargs), started in a thread at once; result() waits for it, then returns what
    it returned or raises what it raised."""

    def __init__(self, fn: Callable[..., R], *args, **kwargs):
        self._outcome: dict = {}

        def run() -> None:
            try:
                self._outcome["value"] = fn(*args, **kwargs)
            except BaseException as e:  # raised again in the thread that asks for the result
                self._outcome["error"] = e
        # a daemon: a Ctrl-C in the main thread ends the process without waiting for the work
        self._thread = threading.Thread(target=run, name=f"beside-ray-{getattr(fn, '__name__', 'work')}",
                                        daemon=True)
        self._thread.start()

    def result(self) -> R:
        self._thread.join()
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["value"]
