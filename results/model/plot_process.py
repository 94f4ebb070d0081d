"""The search plots drawn in a second process, beside the driver's other work after a sweep
(exporting the chosen trial, stopping Ray). matplotlib holds the GIL while it draws, so a thread
would not run beside the export; a process does. A sweep starts it at its tail, once fewer trials
are left than there are slots and a core would idle, so that its start and imports cost nothing
the user waits for.

Leaves out what the plots show (plots.py, figures.draw_search_plots). No Ray.
"""
from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path


def _ready() -> None:
    # A Ctrl-C reaches the whole process group: the driver decides what it means, and ends this
    # process with its pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from . import figures  # noqa: F401  matplotlib and pandas, imported while a core is idle


class PlotProcess:
    """One spawned process that draws a run's search plots; where none can be started (or it
    dies), they are drawn in this process instead, the same figures either way."""

    def __init__(self):
        self._pool: ProcessPoolExecutor | None | bool = None  # False: none could be started

    def start(self) -> None:
        """Start the process, and its imports, now (a second call does nothing)."""
        if self._pool is not None:
            return
        try:
            # spawn, not fork: the driver has Ray's threads, and a fork copies none of them
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_ready)
            self._pool.submit(int)  # the pool starts its process with its first task
        except OSError:
            self._pool = False

    def search_plots(self, run_dir: str | Path) -> Callable[[], None]:
        """Start drawing run_dir's search plots; returns the wait for them, which raises what
        drawing raised (a full disk, say)."""
        from .figures import draw_search_plots

        self.start()
        drawn = None
        if self._pool:
            try:
                drawn = self._pool.submit(draw_search_plots, str(run_dir))
            except BrokenProcessPool:  # it died before this task
                pass

        def wait() -> None:
            if drawn is not None:
                try:
                    return drawn.result()
                except BrokenProcessPool:  # the process died (killed, out of memory)
                    pass
            draw_search_plots(run_dir)  # no process to draw them: drawn here
        return wait

    def close(self) -> None:
        """End the process (after the task it is on)."""
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def __enter__(self) -> PlotProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
