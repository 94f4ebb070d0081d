"""The checkpoints of a sweep's trials, as the driver looks after them: which finished trial keeps
its weights (the best so far, for the export; the others' go as they finish), and what the trials
paused at a rung hold (halving's barriers), for the progress line and the closing lines.

Leaves out writing checkpoints (trainable.py) and reading them (mlp_core.model.read_state).
"""
from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from results.folder import table as T
from results.folder.runfolder import epoch_states, trial_folder

from .faults import lost_for_good
from .ray_api import Callback, Trial
from .session import member


class BestWeights:
    """The best finished trial so far (in `show`'s ranking, T.rank_key): the one trial whose
    checkpoints keep their weights, so that the chosen trial is exported as it was trained."""

    def __init__(self, run_dir: Path, storage: str | None):
        self.run_dir, self.storage = run_dir, storage  # where the trials' folders are
        self.kept: tuple | None = None  # (its rank key, its id, its folder or None: looked up)

    def loaded(self, tid: str, row: dict) -> None:
        """A trial an earlier driver finished (its weights were looked after then)."""
        key = T.rank_key(row)
        if key is not None and (self.kept is None or key < self.kept[0]):
            self.kept = (key, tid, None)

    def finished(self, tid: str, row: dict, folder: str | None) -> None:
        """A trial that just finished loses its weights unless it is now the best, and then the
        one it beat loses them."""
        key = T.rank_key(row)
        if key is None or (self.kept is not None and self.kept[0] <= key):
            drop_checkpoint_weights(folder)
            return
        # the export reads one state per whole epoch: the rest (inside the first epoch, a
        # replay's twins) can go
        drop_checkpoint_weights(folder, keep=set(epoch_states(folder).values()) if folder else ())
        beaten, self.kept = self.kept, (key, tid, folder)
        if beaten is not None:
            drop_checkpoint_weights(beaten[2] or trial_folder(self.run_dir, self.storage, beaten[1]))


class PausedCheckpoints(Callback):
    """The trials paused at a rung and the bytes of the checkpoints they keep, counted at most once
    a second (a walk over every trial); the peak is reported at the end."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.bytes: Counter = Counter()  # trial id -> bytes of the checkpoints it keeps
        self.paused, self.paused_bytes, self.peak = 0, 0, (0, 0)
        self._last_tally = 0.0

    def __reduce__(self):  # a restored experiment reports to this driver's (session.py says why)
        return member, (str(self.run_dir), "paused")

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        # a running trial keeps every checkpoint it saved (drop_checkpoint_weights says why)
        self.bytes[trial.trial_id] += folder_bytes(checkpoint.path)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.bytes.pop(trial.trial_id, None)  # its weights are dropped, or kept for the export

    def on_trial_error(self, iteration, trials, trial, **info):
        if lost_for_good(trial):  # one that is retried restarts from the checkpoints it keeps
            self.bytes.pop(trial.trial_id, None)

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if now - self._last_tally >= 1.0:
            self._last_tally = now
            paused = [t.trial_id for t in trials if t.status == Trial.PAUSED]
            self.paused = len(paused)
            self.paused_bytes = sum(self.bytes.get(tid, 0) for tid in paused)
            self.peak = max(self.peak, (self.paused, self.paused_bytes))

    def on_experiment_end(self, trials, **info):
        self.paused, self.paused_bytes = 0, 0  # none waits now (the tally runs once a second)


def drop_checkpoint_weights(folder: str | os.PathLike | None, keep=()) -> None:
    """Free a finished trial's checkpoint weights (in its trial folder), keeping the (now tiny)
    checkpoint folders.

    Tune keeps every checkpoint (no num_to_keep): with num_to_keep, a checkpoint named by the last
    experiment snapshot can be deleted before the next snapshot lands, and a resume after the
    driver is killed then fails to restore that trial. A finished trial is never trained again
    (it is in results.csv), so its weights can go; its folders stay so that a stale snapshot
    still restores and the trial returns at once. The state files in `keep` stay (the best
    trial's, for the export). Local storage only; remote storage keeps all."""
    path = Path(folder or "")
    if folder and path.is_dir():
        for state in path.glob(f"checkpoint_*/{T.STATE_FILE}"):
            if state in keep:
                continue
            state.unlink(missing_ok=True)


def folder_bytes(path) -> int:
    """The bytes of the files directly in a (local) checkpoint folder; 0 when it is not local."""
    try:
        return sum(e.stat().st_size for e in os.scandir(path) if e.is_file())
    except (OSError, TypeError):
        return 0
