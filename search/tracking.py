"""MLflow beside a running sweep: a daemon thread of the driver logs the run folder's newly
finished trials every few seconds, read from its tables (results/trackers/mlflow_log.py), so
nothing is added to the trials' path and a node needs no MLflow; at the end, once more with the
sweep's outcome and artifacts. A tracking server that is down, slow or refuses costs one
warning line: the sweep goes on, and the closing line says what was not logged and the command
that logs it later.

Leaves out what is logged (results/trackers/).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from results.columns import SWEEP_FILE
from results.trackers.mlflow_log import Logged, TrackerError, log_run


class MlflowSync:
    """log_run(run_dir, uri) every `every_s` seconds while the sweep runs, then finish()."""

    # How often: each sync reads the tables and asks the server which trials it has, so not
    # too often; a trial's run appears at most this long after it ends
    EVERY_S = 30.0

    def __init__(self, run_dir: Path, uri: str | None, say: Callable[[str], None], later: str,
                 every_s: float = EVERY_S):
        self.run_dir, self.uri, self.say, self.later = run_dir, uri, say, later
        self.every_s = every_s
        self.failed: str | None = None  # the last failure, said once
        self.logged: Logged | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlflow-sync", daemon=True)

    def start(self) -> MlflowSync:
        # MLflow and what it imports (IPython among them) are imported here, in the main thread:
        # a first import in this thread while the main thread imports the same modules (the
        # export does) can hand one of them a partially initialised module
        import mlflow.entities  # noqa: F401
        import mlflow.tracking  # noqa: F401
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            if (self.run_dir / SWEEP_FILE).is_file():
                self._sync(final=False)

    def _sync(self, final: bool) -> None:
        try:
            self.logged = log_run(self.run_dir, self.uri, final=final)
            self.failed = None
        except TrackerError as e:
            if self.failed is None:  # one line, not one per attempt
                self.say(f"warning: mlflow: {e}; the sweep goes on (what is not logged: {self.later})")
            self.failed = str(e)
        except Exception as e:  # noqa: BLE001 - a table being read as it is first written, say
            self.failed = f"{type(e).__name__}: {e}"

    def stop(self, wait_s: float | None = None) -> None:
        """No more syncs (an interrupted sweep: what was finished is logged later, on demand);
        a sync under way is waited for, at most `wait_s` (a daemon thread, it ends with the
        process)."""
        self._stop.set()
        self._thread.join(wait_s)

    def finish(self, final: bool = True) -> str:
        """Stop the thread, log what is left (`final`: the outcome and artifacts too); the
        closing line."""
        self.stop()
        if (self.run_dir / SWEEP_FILE).is_file():
            self._sync(final)
        if self.failed is not None:
            return f"mlflow: not everything was logged ({self.failed}); log it with: {self.later}"
        if self.logged is None:
            return "mlflow: nothing to log"
        return (f"mlflow: {self.logged.total} trial runs under the parent run {self.logged.parent} "
                f"(experiment mlp-sweep) at {self.logged.uri}")
