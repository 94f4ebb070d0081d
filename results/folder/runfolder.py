"""The run folder OUT/NAME: its name checked, created exclusively, Tune's place in it, what a
resume trusts, and one driver at a time (an advisory lock held for the driver's whole life, which
the kernel drops when the process dies, so a driver killed with SIGKILL leaves nothing stale),
and where a trial's checkpoints are.

Leaves out what a run folder holds (results/folder/table.py).
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import os
import re
from pathlib import Path

from mlp_core.model import UNREADABLE, read_state
from mlp_core.train import Trainer

from ..errors import SweepError
from ..sweep.edges import read_rounds
from .table import STATE_FILE, SWEEP_FILE

TUNE_DIR = "tune"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # a whole name: NAME_RE.fullmatch

LOCK_FILE = "driver.lock"  # holds the PID of the driver that has the folder


class FolderInUse(Exception):
    """Another live driver holds the folder; the message names the folder and its PID."""


def lock_folder(folder: str | os.PathLike):
    """Take `folder`'s lock, or raise FolderInUse naming the holder's PID. Returns the open lock
    file: the lock lasts until it is closed or this process ends."""
    path = Path(folder) / LOCK_FILE
    # O_NOFOLLOW: a link planted at the lock's path is refused, not followed
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    f = os.fdopen(fd, "r+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = f.read().strip() or "unknown"
        f.close()
        raise FolderInUse(f"{folder} is in use by another driver (PID {holder}); wait for it to "
                          f"end, or stop it") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def holder(folder: str | os.PathLike) -> str | None:
    """The PID of the live driver holding `folder`, or None when no driver holds it. Only asks:
    the lock file is opened read-only and left as it is."""
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # no lock file (or a link planted there): no driver of ours holds it
        return None
    with os.fdopen(fd) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when f closes
        except BlockingIOError:
            return f.read().strip() or "unknown"
    return None


def default_name() -> str:
    return "sweep-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def run_folder(out: str, name: str) -> Path:
    """OUT/NAME, refusing names that are not a plain folder name (no '/', '..', leading dot)."""
    if not NAME_RE.fullmatch(name) or ".." in name:
        raise SweepError(f"--name: {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
                         f"(no '/', no '..', not starting with '.')")
    return Path(out).expanduser().resolve() / name


def absolute_storage(storage: str | None) -> str | None:
    """--storage as Tune must get it: a URI unchanged, a path made absolute (trials chdir)."""
    if storage and "://" not in storage:
        return str(Path(storage).expanduser().resolve())
    return storage


def tune_location(run_dir: Path, storage: str | None, round_: int = 0) -> tuple[str, str]:
    """(storage_path, experiment name) for Tune: RUN_DIR/tune by default, STORAGE/NAME with
    --storage (a path every node shares, or a URI such as s3://bucket/prefix); a later round of
    --extend-edges has its own experiment beside it, NAME-round1 and so on."""
    suffix = f"-round{round_}" if round_ else ""
    if storage:
        return storage.rstrip("/"), run_dir.name + suffix
    return str(run_dir), TUNE_DIR + suffix


def trial_folder(run_dir: Path, storage: str | None, trial_id: str) -> Path | None:
    """A trial's folder among Tune's (TRIALNAME_<trial id>_<index>_<date>), in any round's
    experiment, where its checkpoints are; None where there is none, or the storage is not a
    local path."""
    if not re.fullmatch(r"[0-9A-Za-z_-]+", str(trial_id)):
        return None
    found = []
    for r in range(1 + len(read_rounds(run_dir))):
        storage_path, name = tune_location(Path(run_dir), storage, r)
        if "://" in storage_path:
            return None
        found += [p for p in Path(storage_path, name).glob(f"*_{trial_id}_*") if p.is_dir()]
    return found[0] if len(found) == 1 else None


def epoch_states(folder: Path | None) -> dict[int, Path]:
    """The state files a trial saved at the end of each whole epoch, by epoch (of twins, which a
    trial replays after a pause with the same weights, the newest). Unreadable ones are left out."""
    found: dict[int, Path] = {}
    for path in sorted(Path(folder).glob(f"checkpoint_*/{STATE_FILE}")) if folder else []:
        try:
            epoch = Trainer.epoch_ended(read_state(path, ("epochs_done", "mid_epoch_counts")))
        except UNREADABLE:
            continue
        if epoch is not None:
            found[epoch] = path
    return found


def check_run_folder(run_dir: Path, resume: bool, storage: str | None = None) -> None:
    """Refuse a new sweep over an existing run (even an empty folder), a resume of something
    that is not one, and a folder another live driver holds."""
    pid = holder(run_dir) if run_dir.is_dir() else None
    if pid:
        raise SweepError(f"{'--resume' if resume else '--name'}: {run_dir} is in use by another "
                         f"driver (PID {pid}); wait for it to end, or stop it")
    if resume:
        if not (run_dir / SWEEP_FILE).is_file():
            raise SweepError(f"--resume: {run_dir} holds no sweep to resume ({SWEEP_FILE} not found)")
        base, name = tune_location(run_dir, storage)
        if "://" not in base and not (Path(base) / name).is_dir():
            raise SweepError(f"--resume: {Path(base) / name} is missing: the sweep cannot be resumed")
        # Ray Tune unpickles tuner.pkl and its experiment state on a resume: as ssh does with
        # keys, refuse files that someone else could have written
        trusted = [run_dir, run_dir / SWEEP_FILE] + ([Path(base) / name] if "://" not in base else [])
        for p in trusted:
            problem = untrusted(p)
            if problem:
                raise SweepError(f"--resume: {p} {problem}; a resume unpickles files from there, "
                                 f"so only your own, unshared folders are resumed")
    elif run_dir.exists() or run_dir.is_symlink():
        raise SweepError(f"--name: {run_dir} already exists; pass --resume to continue it "
                         f"or choose another --name (earlier results are never overwritten)")


def untrusted(path: Path) -> str | None:
    """Why `path` could hold someone else's writing (another owner, writable by group or
    others), or None."""
    st = path.stat()
    if st.st_uid != os.getuid():
        return f"is owned by another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"is writable by group or others (mode {st.st_mode & 0o777:o}; chmod go-w it)"
    return None


def create_run_folder(run_dir: Path) -> None:
    """Create OUT/NAME, exclusively: of two drivers starting the same new sweep, one fails."""
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # --out is a file, or not writable
        raise SweepError(f"--out: cannot write to {run_dir}: {e.strerror or e}") from None
    try:
        run_dir.mkdir()
    except FileExistsError:
        raise SweepError(f"--name: {run_dir} already exists; pass --resume to continue it "
                         f"or choose another --name (earlier results are never overwritten)") from None
    except OSError as e:
        raise SweepError(f"--out: cannot write to {run_dir}: {e.strerror or e}") from None


def take_folders(run_dir: Path, storage_path: str, tune_name: str, resume: bool) -> list:
    """This driver's locks on its run folder and, with a local --storage, on STORAGE/NAME (two
    sweeps whose experiment folders there collide must not share one). Kept for the driver's
    life by whoever holds the SweepOutcome."""
    locks = []
    try:
        locks.append(lock_folder(run_dir))
        if "://" not in storage_path and Path(storage_path) != run_dir:
            experiment = Path(storage_path) / tune_name
            experiment.mkdir(parents=True, exist_ok=True)
            locks.append(lock_folder(experiment))
    except FolderInUse as e:
        for f in locks:
            f.close()
        raise SweepError(f"{'--resume' if resume else '--storage'}: {e}") from None
    return locks
