"""search.fitting, driven by hand without Ray: the fit restored while it cannot move and each
restore helps, stopped (SweepStalled) once one does not; owed retries restored after a fit that
ended; what raylets say to the driver diverted to the run's log."""
from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from search import fitting
from search.errors import SweepStalled
from search.faults import SweepIdle


class Said:
    restores = 0

    def __init__(self):
        self.lines = []

    def say(self, text):
        self.lines.append(text)


def fits(monkeypatch, outcomes):
    """fit_until_full answering each call with the next outcome: None (done) or an exception."""
    calls = []

    def fake(tuner, verbose, log_path):
        calls.append(tuner)
        outcome = outcomes[len(calls) - 1]
        if callable(outcome):
            return outcome()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
    monkeypatch.setattr(fitting, "fit_until_full", fake)
    return calls


def recorder(tmp_path, rows=(), owed=()):
    return SimpleNamespace(run_dir=tmp_path, rows=dict.fromkeys(rows), owed=set(owed))


def test_an_idle_fit_is_restored_while_restores_help_and_stopped_once_one_does_not(tmp_path, monkeypatch):
    idle = [SweepIdle(0.25, ["t1 (hidden_size=32, ...): paused"], (10, 3)),
            SweepIdle(0.25, ["t1 (hidden_size=32, ...): paused"], (12, 5)),  # moved on: restored again
            SweepIdle(0.25, ["t1 (hidden_size=32, ...): paused"], (12, 5))]  # did not: stop
    calls = fits(monkeypatch, idle)
    restored, progress = [], Said()
    with pytest.raises(SweepStalled, match=r"the sweep cannot go on: no trial running and none can start: "
                                           r"rung 0.25 waits for 1 trial \(t1 \(hidden_size=32"):
        fitting.fit_retrying("first", lambda: restored.append(1) or f"restored{len(restored)}",
                             recorder(tmp_path), progress, verbose=False)
    assert calls == ["first", "restored1", "restored2"] and progress.restores == 2
    assert all(line.endswith("restoring the experiment to run them again") for line in progress.lines)


def test_trials_owed_a_retry_after_a_fit_are_run_again_until_they_finish(tmp_path, monkeypatch):
    rec = recorder(tmp_path, rows=["a"], owed=["b"])
    calls = fits(monkeypatch, [None, lambda: rec.rows.setdefault("b")])  # the restore finishes b
    progress = Said()
    assert fitting.fit_retrying("first", lambda: "restored", rec, progress, verbose=False) is None
    assert calls == ["first", "restored"] and progress.restores == 1
    assert progress.lines == ["Tune ended 1 trial(s) with retries left: restoring the experiment to run them again"]
    stuck = recorder(tmp_path, rows=["a"], owed=["b"])  # a restore that finishes nothing: stopped
    fits(monkeypatch, [None, None])
    with pytest.raises(SweepStalled, match="Tune ended 1 trial"):
        fitting.fit_retrying("first", lambda: "restored", stuck, Said(), verbose=False)


@pytest.mark.parametrize("verbose", [False, True])
def test_what_raylets_say_goes_to_the_log_and_the_rest_to_stdout(tmp_path, verbose):
    out, log = io.StringIO(), tmp_path / "ray.log"
    diverted = fitting.Diverted(out, log, verbose)
    notice = "\x1b[33m(raylet)\x1b[0m A worker died or was killed while executing a task ... Worker PID: 123"
    diverted.write(notice)
    diverted.write("a line of the user's\n")
    assert log.read_text() == notice + "\n"
    assert out.getvalue() == (notice if verbose else "") + "a line of the user's\n"
    assert diverted.getvalue() == out.getvalue()  # the rest of the stream is the stream's
