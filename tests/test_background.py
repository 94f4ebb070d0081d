"""The work done beside Ray's start and stop: a thread that hands back its value or its error,
the progress line's call at the sweep's tail, and a full disk that crosses a process whole."""
from __future__ import annotations

import pickle
import threading
from types import SimpleNamespace

import pytest

from mlp_core.files import DiskFull
from search.background import Background
from search.progress import AtTail


def test_background_runs_beside_the_caller_and_hands_back_its_value():
    started = threading.Event()
    release = threading.Event()

    def work():
        started.set()
        assert release.wait(10)  # only the caller's own work, done meanwhile, releases it
        return 42

    job = Background(work)
    assert started.wait(10)  # running before the caller asks for it
    release.set()
    assert job.result() == 42


def test_background_raises_its_error_in_the_caller():
    def work():
        raise DiskFull("/data/run", 123)

    with pytest.raises(DiskFull, match="could not take 123 bytes"):
        Background(work).result()


def test_a_full_disk_crosses_a_process_as_itself():
    e = pickle.loads(pickle.dumps(DiskFull("/data/run/x.png", 2048)))
    assert isinstance(e, DiskFull) and e.path == "/data/run/x.png" and e.nbytes == 2048
    assert str(e) == str(DiskFull("/data/run/x.png", 2048))


def recorder(done: int):
    return SimpleNamespace(rows=dict.fromkeys(range(done)), run_dir="/nowhere",
                           counts={"stopped_early": 0, "diverged": 0, "error": 0}, best=None)


@pytest.mark.parametrize("slots, calls_after", [
    (2, [0, 0, 0, 1, 1]), (3, [0, 0, 1, 1, 1]), (1, [0, 0, 0, 0, 1]), (8, [1, 1, 1, 1, 1])])
def test_the_tail_is_announced_once_when_fewer_trials_are_left_than_slots(slots, calls_after):
    calls = []
    rec = recorder(0)
    tail = AtTail(rec, 5, slots, lambda: calls.append(1))
    seen = []
    for done in range(1, 6):  # five trials end, one by one
        rec.rows[done] = None
        tail.on_trial_complete(0, [], SimpleNamespace(trial_id=done))
        seen.append(len(calls))
    assert seen == calls_after
