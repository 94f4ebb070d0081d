"""The sweep's progress line: trials done, running, stopped early, diverged and paused at a rung,
the best so far, elapsed time and ETA; rewritten in place in a terminal and in a Jupyter cell.
Also the sweep's tail (AtTail: fewer trials left than slots, so a core idles), where the work
after the sweep can start.

Leaves out the tables (callbacks.py), whose recorder both read.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

from mlp_core.files import size_text
from results.folder import table as T

from .callbacks import RunRecorder
from .checkpoints import PausedCheckpoints
from .faults import failure_line, named
from .ray_api import Callback
from .session import member
from .trainable import DETAILS, RESTORE_NOTE, unpacked


class Progress(Callback):
    """One line: trials done / running / stopped early / diverged, best so far, elapsed, ETA."""

    def __init__(self, recorder: RunRecorder, total: int, stream=None, every_s: float = 2.0,
                 display=None, paused: PausedCheckpoints | None = None):
        """`display`: an object with update(text), such as IPython's display handle; without
        one, a Jupyter kernel gets one of its own (the line is updated in place in the cell,
        with no carriage returns), a terminal gets the line rewritten in place, and anything
        else a new line every 30 s. `paused`: the trials paused at a rung (halving's), said with
        the checkpoints they hold."""
        self.recorder = recorder
        self.paused = paused
        self.running: set[str] = set()  # trials started and not ended (a paused one has not ended)
        self.total = total
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.display = display if display is not None else (notebook_display() if stream is None else None)
        self.tty = self.display is None and getattr(self.stream, "isatty", lambda: False)()
        self.t0 = time.monotonic()
        self.done_at_start = len(recorder.rows)
        self._last = 0.0
        self.failures = 0  # trial failures said (a worker's death, a node's, an error)
        self.restores = 0  # restores of the experiment by the sweep (fitting.fit_retrying)

    def __reduce__(self):  # a restored experiment reports to this driver's (session.py says why)
        return member, (str(self.recorder.run_dir), "progress")

    def line(self) -> str:
        rec = self.recorder
        done = len(rec.rows)
        elapsed = time.monotonic() - self.t0
        new = done - self.done_at_start
        eta = f"{_hms(elapsed / new * (self.total - done))}" if new > 0 and done < self.total else "-"
        paused, paused_bytes = (self.paused.paused, self.paused.paused_bytes) if self.paused else (0, 0)
        running = max(0, len(self.running) - paused)
        parts = [f"trials {done}/{self.total} done", f"{running} running",
                 f"{rec.counts[T.Status.STOPPED_EARLY]} stopped early", f"{rec.counts[T.Status.DIVERGED]} diverged"]
        if rec.counts[T.Status.ERROR]:
            parts.append(f"{rec.counts[T.Status.ERROR]} errors")
        if paused:
            parts.append(f"{paused} paused at a rung" + (f" ({size_text(paused_bytes)} of checkpoints)"
                                                         if paused_bytes else ""))
        text = ", ".join(parts)
        if rec.best is not None:
            text += f" | best val_accuracy {rec.best:.4f}"
        return f"{text} | elapsed {_hms(elapsed)}, ETA {eta}"

    def _emit(self, force=False):
        now = time.monotonic()
        in_place = self.tty or self.display is not None
        if not force and now - self._last < (self.every_s if in_place else 30.0):
            return
        self._last = now
        if self.display is not None:
            self.display.update(self.line())
            return
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if RESTORE_NOTE in result.get(DETAILS, ""):  # rare: a text search before any JSON
            note = unpacked(result).get(RESTORE_NOTE)
            if note:
                self.say(f"trial {named(trial)}: {note}")

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.failures += 1
        self.say(failure_line(trial, self.recorder.nodes.get(trial.trial_id)))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.on_trial_recover(iteration, trials, trial)  # the line says which: retried, or for good

    def say(self, text: str) -> None:
        """One line of its own, above the progress line."""
        if self.display is not None or not self.tty:
            print(text, file=self.stream, flush=True)
        else:
            self.stream.write("\r\033[K" + text + "\n" + self.line())
            self.stream.flush()

    def on_step_begin(self, iteration, trials, **info):
        self._emit()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self._emit(force=self.tty)

    def on_experiment_end(self, trials, **info):
        self._emit(force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class AtTail(Callback):
    """`then()` called once, when fewer of the sweep's `total` trials are left unfinished than
    there are `slots` (from then on a core idles: the plots after the sweep start there)."""

    def __init__(self, recorder: RunRecorder, total: int, slots: int, then: Callable[[], None] | None):
        self.recorder, self.total, self.slots, self.then = recorder, total, slots, then

    def __reduce__(self):  # a restored experiment reports to this driver's (session.py says why)
        return member, (str(self.recorder.run_dir), "tail")

    def on_trial_complete(self, iteration, trials, trial, **info):
        if self.then and self.total - len(self.recorder.rows) < self.slots:
            then, self.then = self.then, None
            then()


class NotebookLine:
    """The progress line as one output of a Jupyter cell, updated in place (plain text, not the
    quoted repr of a string)."""

    def __init__(self):
        from IPython.display import Pretty, display
        self._pretty = Pretty
        self._handle = display(Pretty(""), display_id=True)

    def update(self, text: str) -> None:
        self._handle.update(self._pretty(text))


def notebook_display() -> NotebookLine | None:
    """The progress line's display when this runs in a Jupyter kernel, else None."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "kernel"):
        return None
    return NotebookLine()


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
