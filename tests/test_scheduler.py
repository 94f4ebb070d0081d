"""search.scheduler: deterministic successive halving. Its decisions worked out by hand, the same
whatever order the values arrive in and however many workers produce them, its pauses and stops
through Tune's scheduler API (driven by hand, without starting Ray), and its state read back
from its log after a resume."""
from __future__ import annotations

import bisect
import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from mlp_core.train import MID_EPOCH
from results.sweep.halving import RUNG_LOG, Halving
from results.sweep.settings import grid_key
from search.scheduler import HalvingScheduler
from search.sweep import SweepError, SweepSpec, make_scheduler
from search.trainable import DETAILS, packed, unpacked

# isort: split

from ray.tune.experiment import Trial  # noqa: E402 (after search, above)
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler  # noqa: E402

STOP, GO, PAUSE = TrialScheduler.STOP, TrialScheduler.CONTINUE, TrialScheduler.PAUSE
NAN = float("nan")


def test_each_rung_keeps_the_best_ceil_n_over_eta_worked_by_hand():
    h = Halving(5, rungs=(1, 2), reduction_factor=2)
    key = {t: (16, lr, 0.0) for t, lr in zip("abcde", (0.1, 0.2, 0.3, 0.4, 0.5), strict=False)}
    for t, v in zip("abcd", (0.5, 0.9, 0.7, 0.6), strict=False):
        assert h.record(t, 0, v, key[t]) == []  # rung 1 waits for all five
        assert h.fate(t, 0) is None
    assert h.record("e", 0, 0.8, key["e"]) == [0]  # the fifth value decides it
    assert h.promoted[0] == ["b", "e", "c"]  # ceil(5 / 2) = 3, best first
    assert h.cutoff(0) == 0.7
    assert [h.fate(t, 0) for t in "abcde"] == ["stop", "go", "go", "stop", "go"]
    assert h.entrants(1) == 3 and not h.entered("a", 1)
    assert h.record("a", 1, 0.99, key["a"]) == []  # stopped at rung 1: ignored at rung 2
    h.record("c", 1, 0.75, key["c"])
    h.record("b", 1, 0.91, key["b"])
    assert h.record("e", 1, 0.95, key["e"]) == [1]
    assert h.promoted[1] == ["e", "b"]  # ceil(3 / 2) = 2
    assert h.fate("c", 1) == "stop" and h.fate("a", 1) == "stop" and h.fate("e", 1) == "go"
    assert h.summary() == [{"rung": 1, "entered": 5, "went_on": 3, "stopped": 2, "cutoff": 0.7},
                           {"rung": 2, "entered": 3, "went_on": 2, "stopped": 1, "cutoff": 0.91}]


def test_ties_go_to_the_earlier_grid_position_and_non_finite_values_never_go_on():
    h = Halving(4, rungs=(1,), reduction_factor=2)
    h.record("x", 0, 0.5, (64, 0.1, 0.01))
    h.record("y", 0, 0.5, (32, 0.1, 0.01))  # same value, smaller hidden size: ranks first
    h.record("z", 0, NAN, (16, 0.1, 0.01))
    assert h.pending_rung("w") == 0
    h.record("w", 0, NAN, (16, 0.5, 0.01))  # ended before the rung (diverged): counts as NaN
    assert h.promoted == [["y", "x"]]
    all_bad = Halving(2, rungs=(1, 2), reduction_factor=2)
    all_bad.record("p", 0, NAN, (1,))
    assert all_bad.record("q", 0, math.inf, (2,)) == [0, 1]  # nobody goes on: rung 2 is empty
    assert all_bad.promoted == [[], []]


def simulate(values: dict, durations: dict, rungs, eta: int, workers: int) -> tuple[Halving, float]:
    """Trials on `workers` simulated workers, each segment between rungs lasting durations[t] x
    its length in epochs, a trial paused at an undecided rung giving its worker to the next.
    Returns the decisions and the simulated wall time."""
    import heapq

    h = Halving(len(values), rungs, eta)
    ready = sorted(values, key=lambda t: -durations[t])  # largest first, as the scheduler picks
    at = {t: 0 for t in values}  # the index of the next rung each trial heads for
    paused, events, clock, free = [], [], 0.0, workers
    while ready or events or paused:
        while free and ready:
            t = ready.pop(0)
            j = at[t]
            start = rungs[j - 1] if j else 0
            heapq.heappush(events, (clock + durations[t] * (rungs[j] - start), t))
            free -= 1
        if not events:
            break
        clock, t = heapq.heappop(events)
        free += 1
        j = at[t]
        h.record(t, j, values[t][j], (t,))
        paused.append(t)
        for p in list(paused):
            fate = h.fate(p, at[p])
            if fate is not None:
                paused.remove(p)
                if fate == "go" and at[p] + 1 < len(rungs):
                    at[p] += 1
                    ready.append(p)
        ready.sort(key=lambda t: -durations[t])
    return h, clock


def test_the_same_decisions_at_any_number_of_workers():
    rng = np.random.default_rng(0)
    trials = [f"t{i:03d}" for i in range(175)]
    rungs = (0.25, 1, 2, 4)
    values = {t: list(np.round(rng.random(len(rungs)), 2)) for t in trials}  # many ties
    values["t007"][0] = NAN
    durations = {t: float(rng.choice([1, 2, 4, 8, 16])) for t in trials}
    runs = {w: simulate(values, durations, rungs, 4, w) for w in (1, 2, 16, 64, 256)}
    decisions = {w: h.promoted for w, (h, _) in runs.items()}
    assert all(d == decisions[1] for d in decisions.values())
    assert [len(p) for p in decisions[1]] == [44, 11, 3, 1]  # 175 -> 44 -> 11 -> 3 -> 1
    assert runs[256][1] < runs[2][1] < runs[1][1]  # and more workers finish sooner


class Controller:
    """What Tune hands a scheduler: its trials, and stop_trial (which calls back as Tune does)."""

    def __init__(self, scheduler):
        self.scheduler, self.trials, self.stopped = scheduler, [], []

    def add(self, tid, hidden, status=Trial.RUNNING):
        trial = SimpleNamespace(trial_id=tid, status=status, is_saving=False, last_result={},
                                config={"hidden_size": hidden, "learning_rate": 0.1, "l2": 0.0},
                                retries_left=0, num_failures=1, max_failures=6)
        trial.should_recover = lambda: trial.retries_left > 0  # as Tune's Trial answers
        self.trials.append(trial)
        self.scheduler.on_trial_add(self, trial)
        return trial

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial):
        self.stopped.append(trial.trial_id)
        if trial.status in (Trial.PAUSED, Trial.PENDING):
            self.scheduler.on_trial_remove(self, trial)
        trial.status = Trial.TERMINATED

    def report(self, trial, epoch, acc):
        # as a trial of a halving sweep reports: the epoch inside the JSON details, not a key
        trial.last_result = packed({"epoch": epoch, "val_accuracy": acc, "train_loss": 1.0},
                                   top=("val_accuracy",))
        assert "epoch" not in trial.last_result
        decision = self.scheduler.on_trial_result(self, trial, trial.last_result)
        if decision == PAUSE:
            trial.status = Trial.PAUSED
        elif decision == STOP:
            self.stopped.append(trial.trial_id)
            trial.status = Trial.TERMINATED
        return decision


def test_tune_scheduler_pauses_at_an_open_rung_then_resumes_the_best_and_stops_the_rest(tmp_path):
    s = HalvingScheduler(4, rungs=(0.25, 1), epochs=3, reduction_factor=2, log_path=tmp_path / RUNG_LOG)
    s.set_search_properties("val_accuracy", "max")
    c = Controller(s)
    a, b, d = c.add("a", 16), c.add("b", 64), c.add("d", 32)
    e = c.add("e", 16, status=Trial.PENDING)
    assert c.report(a, 0.25, 0.3) == PAUSE
    assert c.report(b, 0.25, 0.6) == PAUSE
    assert s.choose_trial_to_run(c) is e  # a pending trial first; no paused one may go on yet
    e.status = Trial.RUNNING
    assert c.report(e, 0.25, 0.5) == PAUSE
    # The rung is open, but whatever d reports, only one value can rank above b's: b is certain
    # to go on, and is sent on without waiting. e is not (d could rank above it too).
    assert s.halving.certain("b", 0) and not s.halving.certain("e", 0)
    assert s.choose_trial_to_run(c) is b
    b.status = Trial.RUNNING
    assert s.choose_trial_to_run(c) is None
    assert c.report(d, 0.25, 0.1) == STOP  # the last value decides: b and e go on, d stops here
    assert c.stopped == ["a", "d"]  # a was paused: stopped by the decision
    assert s.choose_trial_to_run(c) is e
    e.status = Trial.RUNNING
    assert c.report(b, 0.25, 0.6) == GO  # a resumed trial replays its report: same answer
    assert c.report(b, 1, 0.7) == PAUSE
    assert c.report(e, 1, 0.8) == GO  # rung 1: ceil(2 / 2) = 1 goes on
    assert c.stopped == ["a", "d", "b"]
    assert c.report(e, 2, 0.85) == GO  # past the last rung
    assert "rung 0.25: 4 in, 2 on; rung 1: 2 in, 1 on" in s.debug_string()


def test_a_rung_of_ten_thousand_trials_is_decided_and_served_without_walking_them_all():
    """Choosing the next trial walks Tune's trial list only when it finds nothing to start (the
    liveness watch, at most once a second) and asks each trial's fate a bounded number of times:
    the driver's work per trial does not grow with the grid. The promoted trials resume largest
    grid position first."""
    class NoWalk(Controller):
        walks = 0

        def get_trials(self):
            assert s._next_pending() is None and not s._ready, "walked every trial with trials to start"
            NoWalk.walks += 1
            return self.trials

    n = 10_000
    s = HalvingScheduler(n, rungs=(0.25, 1), epochs=2, reduction_factor=4)
    c = NoWalk(s)
    trials = [c.add(f"t{i:05d}", 16 * (1 + i % 4), status=Trial.PENDING) for i in range(n)]
    for t in trials:
        t.config["learning_rate"] = 0.001 * (1 + int(t.trial_id[1:]) // 4)
    fates = []
    fate = s.halving.fate
    s.halving.fate = lambda tid, j: (fates.append(tid), fate(tid, j))[1]
    most_paused, seen = 0, []  # seen: the values reported so far, sorted
    for i, t in enumerate(trials):
        assert s.choose_trial_to_run(c) is t  # pending trials in Tune's order, each once
        t.status = Trial.RUNNING
        value = (i * 7919 % n) / n  # distinct values
        above = len(seen) - bisect.bisect_right(seen, value)
        beaten = above >= n // 4
        certain = above + (n - i - 1) < n // 4  # even if every value to come ranked above it
        decision = c.report(t, 0.25, value)
        assert decision == (STOP if beaten or i == n - 1 and not certain else GO if certain else PAUSE)
        bisect.insort(seen, value)
        paused = sum(1 for x in trials[:i + 1] if x.status == Trial.PAUSED) if i % 500 == 0 else 0
        most_paused = max(most_paused, paused)
    assert len(c.stopped) == n - n // 4
    assert most_paused <= n // 4  # never more than the rung lets go on
    went_on = [t for t in trials if t.status == Trial.RUNNING]  # certain when they reported
    served = []
    while (t := s.choose_trial_to_run(c)) is not None:
        served.append(t)
        t.status = Trial.RUNNING
    assert went_on and served
    assert sorted(t.trial_id for t in served + went_on) == sorted(s.halving.promoted[0])
    # the paused ones that became certain were queued then, the rest at the decision: each part
    # largest grid position first
    keys = [grid_key(t.config) for t in served]
    assert keys == sorted(keys, reverse=True)  # all queued before the first was served
    assert len(fates) <= 3 * n  # a report's, and a promoted trial's twice (queued, served)
    assert NoWalk.walks <= 1  # once, when the last promoted trial had started


@pytest.mark.parametrize("name", ["none", "asha"])
def test_the_other_schedulers_serve_pending_trials_in_order_without_walking_them(name):
    class NoWalk(Controller):
        def get_trials(self):
            raise AssertionError("choose_trial_to_run walked every trial")

    s = make_scheduler(SweepSpec(scheduler=name, epochs=2), 1000)
    if name == "asha":
        s.set_search_properties("val_accuracy", "max")
    c = NoWalk(s)
    trials = [c.add(f"t{i:04d}", 16, status=Trial.PENDING) for i in range(1000)]
    trials[1].status = Trial.RUNNING  # started by Tune itself
    served = []
    while (t := s.choose_trial_to_run(c)) is not None:
        served.append(t)
        t.status = Trial.RUNNING
    assert served == trials[:1] + trials[2:]
    trials[5].status = Trial.PENDING  # a retry: Tune starts it itself
    assert s.choose_trial_to_run(c) is None
    assert pickle.loads(pickle.dumps(s)).choose_trial_to_run(c) is None


def test_a_diverged_trial_stops_at_once_and_one_that_ended_before_its_rung_counts_there():
    s = HalvingScheduler(3, rungs=(1,), epochs=2, reduction_factor=2)
    c = Controller(s)
    x, y, z = c.add("x", 16), c.add("y", 16), c.add("z", 16)
    assert c.report(x, 1, NAN) == STOP  # diverged at the rung
    assert c.report(y, 1, 0.5) == GO  # certain: two go on, and only z's value is still to come
    s.on_trial_complete(c, z, {})  # z diverged inside the first epoch and ended
    assert s.halving.promoted == [["y"]]
    assert s.choose_trial_to_run(c) is None  # y never paused


def test_a_trial_whose_worker_died_is_judged_on_its_retry_and_counts_nan_only_once_failed_for_good():
    """Tune calls on_trial_error when it retries a trial (its worker died) and when the trial has
    failed for good: only the second records NaN at the rung."""
    s = HalvingScheduler(3, rungs=(1,), epochs=2, reduction_factor=2)
    c = Controller(s)
    x, y, z = c.add("x", 16), c.add("y", 32), c.add("z", 64)
    assert c.report(x, 1, 0.5) == PAUSE
    z.retries_left = 1
    s.on_trial_error(c, z)  # z's worker died before its rung: Tune retries it
    assert s.halving.pending_rung("z") == 0 and "z" not in s.halving.values[0]
    z.status = Trial.PENDING
    s.on_trial_add(c, z)  # as Tune adds a retried trial again
    assert s.choose_trial_to_run(c) is z
    z.status = Trial.RUNNING
    assert c.report(z, 1, 0.9) == GO  # the retry's true value counts: above x, and one to come
    y.retries_left = 0
    s.on_trial_error(c, y)  # failed for good: NaN, which decides the rung
    assert s.halving.values[0]["y"] != s.halving.values[0]["y"]
    assert s.halving.promoted == [["z", "x"]]  # ceil(3 / 2); retried, z ranks first


def test_a_trial_beaten_by_enough_others_stops_before_its_rung_is_complete_with_the_same_decisions():
    """At a rung keeping k, a trial that k others already beat is stopped at once (its checkpoint
    freed); the complete rung's decision is the same in every arrival order, and at most k
    trials ever wait paused."""
    rng = np.random.default_rng(5)
    values = {f"t{i:02d}": float(v) for i, v in enumerate(rng.choice(np.arange(40) / 40, 25))}  # ties too
    values["t03"] = NAN
    key = {t: (16, float(i), 0.0) for i, t in enumerate(values)}
    reference = Halving(len(values), (1,), 4)
    for t, v in values.items():
        reference.record(t, 0, v, key[t])
    certain_seen = 0
    for _ in range(20):  # arrival orders
        s = HalvingScheduler(len(values), rungs=(1,), epochs=2, reduction_factor=4)
        c = Controller(s)
        trials = {t: c.add(t, 16) for t in values}
        for t in trials:
            trials[t].config["learning_rate"] = key[t][1]
        early, sent_on = [], []
        for t in rng.permutation(list(values)):
            before = len(c.stopped)
            decision = c.report(trials[t], 1, values[t])
            complete = len(s.halving.promoted) == 1
            if not complete:
                early += c.stopped[before:] + ([t] if decision == STOP else [])
                sent_on += [t] if decision == GO else []
            assert sum(x.status == Trial.PAUSED for x in trials.values()) <= 7  # ceil(25 / 4)
        assert s.halving.promoted == reference.promoted
        assert early and not set(early) & set(reference.promoted[0])  # stopped early: never a finalist
        assert set(sent_on) <= set(reference.promoted[0])  # sent on early: always one
        certain_seen += len(sent_on)
        assert set(c.stopped) == set(values) - set(reference.promoted[0])
    assert certain_seen  # some orders sent a trial on before the rung was complete


def test_a_trial_running_back_to_its_rung_is_stopped_only_once_it_reports_there():
    """After a resume, a trial whose checkpoint was lost starts again: it has a value at rung 1
    (from the record) but is still on its way there. A decision at rung 1, or a value that
    pushes it out, must not stop it early: its table would lack the epochs before the rung."""
    s = HalvingScheduler(4, rungs=(0.25, 1), epochs=2, reduction_factor=2)
    c = Controller(s)
    a, b, d, e = c.add("a", 16), c.add("b", 32), c.add("d", 64), c.add("e", 128)
    for t, v in zip((a, b, d, e), (0.9, 0.8, 0.1, 0.2), strict=False):
        c.report(t, 0.25, v)  # a and b go on
    assert set(c.stopped) == {"d", "e"}
    s.choose_trial_to_run(c).status = Trial.RUNNING
    s.choose_trial_to_run(c).status = Trial.RUNNING
    assert c.report(a, 1, 0.5) == PAUSE
    a.status = Trial.RUNNING  # a restarted from scratch: running, saving, its last report at 0.25
    assert c.report(a, 0.25, 0.9) == GO
    a.is_saving = True
    assert c.report(b, 1, 0.95) == GO  # decides rung 1 against a, which is not at rung 1 yet
    assert "a" not in c.stopped
    a.is_saving = False
    assert c.report(a, 1, 0.5) == STOP  # there, it is stopped


def test_certain_worked_by_hand_and_a_certain_trial_records_at_the_next_rung_early():
    h = Halving(5, rungs=(1, 2), reduction_factor=2)  # keeps 3, then 2
    for t, v in zip("ab", (0.5, 0.9), strict=False):
        h.record(t, 0, v, (ord(t),))
    assert not any(h.certain(t, 0) for t in "ab")  # 3 to come: they could all rank above b
    h.record("c", 0, 0.7, (ord("c"),))  # 2 to come: at most 2 above b, and 3 go on
    assert h.take_certain() == ["b"] and not h.certain("c", 0)
    h.record("d", 0, 0.6, (ord("d"),))  # 1 to come: c (1 above) is certain too, d (2 above) not
    assert [t for t in "abcd" if h.certain(t, 0)] == ["b", "c"] and h.take_certain() == ["c"]
    assert h.fate("b", 0) == "go" and h.fate("a", 0) is None and h.entered("b", 1)
    assert h.record("b", 1, 0.8, (ord("b"),)) == []  # b went on early and reports at rung 2
    assert h.values[1] == {"b": 0.8} and h.keep(1) is None and not h.beaten("b", 1)
    assert h.record("e", 0, 0.95, (ord("e"),)) == [0]  # rung 1 decided: e, b, c
    assert h.promoted[0] == ["e", "b", "c"] and h.take_certain() == []
    h.record("e", 1, 0.85, (ord("e"),))  # 1 to come at rung 2, which keeps 2: e (0 above) is certain
    assert h.take_certain() == ["e"] and not h.certain("b", 1)
    assert h.record("c", 1, 0.1, (ord("c"),)) == [1] and h.promoted[1] == ["e", "b"]


def test_beaten_and_displaced_worked_by_hand():
    h = Halving(6, rungs=(1,), reduction_factor=3)  # keeps 2
    h.record("a", 0, 0.5, (1,))
    h.record("b", 0, 0.7, (2,))
    assert not h.beaten("a", 0) and h.displaced(0) is None
    h.record("c", 0, 0.6, (3,))  # b, c above a
    assert h.beaten("a", 0) and h.displaced(0) == "a" and not h.beaten("c", 0)
    h.record("d", 0, 0.6, (0,))  # ties c, earlier in the grid: ranks above it
    assert h.displaced(0) == "c" and h.beaten("c", 0)
    h.record("e", 0, NAN, (5,))
    assert h.beaten("e", 0) and h.displaced(0) == "c"  # a NaN displaces nobody
    assert not h.beaten("zz", 0)  # no value yet


def test_a_resumed_sweeps_scheduler_reads_its_decisions_back_from_the_log(tmp_path):
    log = tmp_path / RUNG_LOG
    s = HalvingScheduler(3, rungs=(0.25, 1), epochs=2, reduction_factor=2, log_path=log)
    c = Controller(s)
    a, b = c.add("a", 16), c.add("b", 32)
    c.add("d", 64)  # still running when the driver dies
    c.report(a, 0.25, 0.2)
    c.report(b, 0.25, 0.9)
    # Tune pickled the scheduler into tuner.pkl when the sweep started; a resume unpickles it
    restored = pickle.loads(pickle.dumps(HalvingScheduler(3, rungs=(0.25, 1), epochs=2,
                                                          reduction_factor=2, log_path=log)))
    assert restored.halving.values[0] == {"a": 0.2, "b": 0.9}
    assert restored.trials == {}  # Tune adds the restored trials again
    c2 = Controller(restored)
    a2, b2 = c2.add("a", 16, Trial.PAUSED), c2.add("b", 32, Trial.PAUSED)
    a2.last_result, b2.last_result = {"epoch": 0.25}, {"epoch": 0.25}
    d2 = c2.add("d", 64)
    assert c2.report(d2, 0.25, 0.5) == GO  # ceil(3 / 2) = 2: b and d
    assert c2.stopped == ["a"]
    assert restored.choose_trial_to_run(c2) is b2
    assert len(log.read_text().splitlines()) == 3
    # a line cut short by a crash ends the log: what came before it stands
    with open(log, "a") as f:
        f.write('{"trial_id": "x", "ru')
    assert pickle.loads(pickle.dumps(restored)).halving.promoted == [["b", "d"]]


def test_make_scheduler_for_each_choice():
    spec = SweepSpec()
    halving = make_scheduler(spec, 175)
    assert isinstance(halving, HalvingScheduler) and halving.rungs == (0.25, 1, 2, 4)
    assert make_scheduler(SweepSpec(epochs=3), 175).rungs == (0.25, 1, 2)
    assert make_scheduler(SweepSpec(epochs=1, rungs=(1, 2)), 175).rungs == ()
    assert isinstance(make_scheduler(SweepSpec(scheduler="asha"), 175), ASHAScheduler)
    assert isinstance(make_scheduler(SweepSpec(scheduler="none"), 175), FIFOScheduler)
    with pytest.raises(SweepError, match="--scheduler: 'sha'; choose halving, asha, none"):
        SweepSpec(scheduler="sha").validate()


@pytest.mark.parametrize("rungs, message", [
    ((2, 1), "--rungs: 2,1: rungs must be increasing"),
    ((1, 1), "--rungs: 1,1: rungs must be increasing"),
    ((0.5, 0.25), "--rungs: 0.5,0.25: rungs must be increasing"),
    ((0, 2), "--rungs: 0,2: 0 is not a positive number of epochs"),
    ((1.5, 2), "--rungs: 1.5,2: 1.5 is neither a whole number of epochs nor a fraction of the first"),
    ((float("nan"),), "--rungs: nan: nan is not a positive number"),
    ((), "--rungs: empty: give at least one rung"),
])
def test_bad_rungs_refused(rungs, message):
    with pytest.raises(SweepError, match=message):
        SweepSpec(rungs=rungs).validate()


def test_recorder_keeps_reports_inside_the_first_epoch_apart(tmp_path):
    """partial_epochs.csv holds the reports from inside the first epoch; history.csv keeps one
    row per whole epoch; a trial stopped at a partial rung still gets its results.csv row."""
    import pandas as pd

    from search.callbacks import RunRecorder

    rec = RunRecorder(tmp_path, epochs=3)
    trial = {t: SimpleNamespace(trial_id=t, path=None,
                                config={"hidden_size": 8, "learning_rate": 0.1, "l2": 0.0})
             for t in ("a", "b")}

    def result(tid, epoch, acc, partial=False):
        r = {"epoch": epoch, "val_accuracy": acc, "val_loss": 1 - acc, "train_loss": 1.0,
             "train_accuracy": acc, "time_s": 0.1 * epoch, "ended_at": 0.0, "node_id": "n",
             "blas_threads": 1, "diverged": False}
        if partial:
            r[MID_EPOCH] = True
        rec.on_trial_result(0, [], trial[tid], r)

    result("a", 0.25, 0.2, partial=True)
    rec.on_trial_complete(0, [], trial["a"])  # ended before its last epoch: stopped there
    result("b", 0.25, 0.4, partial=True)
    result("b", 1, 0.6)
    result("b", 2, 0.7)
    # b begins a second attempt from scratch (its checkpoint lost): each epoch it reports again
    # replaces its row (here with other values, to tell them apart); the rows of the epochs it
    # has not reached again stay until it does
    result("b", 0.25, 0.45, partial=True)
    result("b", 1, 0.65)
    rec.write()
    history = pd.read_csv(tmp_path / "history.csv")
    partial = pd.read_csv(tmp_path / "partial_epochs.csv")
    results = pd.read_csv(tmp_path / "results.csv")
    assert list(zip(history["trial_id"], history["epoch"], strict=False)) == [("b", 1), ("b", 2)]
    assert history["val_accuracy"].tolist() == [0.65, 0.7]
    assert sorted(zip(partial["trial_id"], partial["epoch"], partial["val_accuracy"], strict=False)) == [
        ("a", 0.25, 0.2), ("b", 0.25, 0.45)]
    assert results[["trial_id", "status", "epochs", "val_accuracy", "stopped_at_rung"]].values.tolist() == [
        ["a", "stopped_early", 0.25, 0.2, 0.25]]
    # a resumed driver reads both files back
    again = RunRecorder(tmp_path, epochs=3)
    assert again.partial["a"][0.25]["val_accuracy"] == 0.2 and again.finished == frozenset({"a"})
    assert set(again.history["b"]) == {1, 2}


def test_a_report_packs_what_tune_need_not_see_into_one_text_and_unpacks_whole():
    metrics = {"epoch": 0.25, "val_accuracy": 0.5, "train_loss": 1.25, "node_id": "ab", MID_EPOCH: True}
    for top in (("epoch", "val_accuracy"), ("val_accuracy",)):
        report = packed(metrics, top)
        assert set(report) == {*top, DETAILS}  # the numbers Tune analyses: these alone
        whole = unpacked({**report, "training_iteration": 3})  # Tune's own keys kept beside
        assert {k: v for k, v in whole.items() if k != DETAILS} == {**metrics, "training_iteration": 3}
    assert unpacked({"epoch": 1, "val_accuracy": 0.5}) == {"epoch": 1, "val_accuracy": 0.5}


def test_a_ctrl_c_that_python_drops_during_start_up_is_still_kept():
    """Python drops a KeyboardInterrupt raised inside some callbacks (the one it runs after a
    fork, as Ray's start forks): the sweep still notes the signal and stops before writing."""
    import os
    import signal
    import time

    from search.sweep import interrupts_kept

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with interrupts_kept() as interrupted:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass  # as Python does with an exception in a fork callback
    assert interrupted == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_per_rung_view_of_an_interrupted_sweep_leaves_an_incomplete_rung_undecided(tmp_path):
    """rungs.jsonl of a sweep stopped with 3 of its 4 trials' values at the first rung and 2 rows
    in results.csv: the rung is open (entrants so far, no decision), not decided on the rows."""
    from results.sweep.halving import RUNG_LOG, append_record
    from results.views.rungs import rung_summary

    for tid, v in (("a", 0.9), ("b", 0.5), ("c", 0.7)):
        append_record(tmp_path / RUNG_LOG, tid, 1, v, (tid,))
    sweep = {"scheduler": "halving", "rungs": (1,), "epochs": 3, "reduction_factor": 2}
    rows = [{"trial_id": t, "status": "stopped_early", "epochs": 1} for t in "bc"]
    (open_rung,) = rung_summary(tmp_path, sweep, 4, rows, [])
    assert open_rung["entered"] == 3 and open_rung["went_on"] is None and open_rung["stopped"] is None
    append_record(tmp_path / RUNG_LOG, "d", 1, 0.1, ("d",))
    (decided,) = rung_summary(tmp_path, sweep, 4, rows, [])
    assert (decided["entered"], decided["went_on"], decided["stopped"], decided["cutoff"]) == (4, 2, 2, 0.7)


class Clock:
    """time.monotonic for the scheduler's liveness watch, moved on by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def idle_watch(monkeypatch, scheduler, controller, clock):
    """choose_trial_to_run as an idle Tune calls it: once now, once after the grace period."""
    from search import faults
    monkeypatch.setattr("search.faults.time.monotonic", clock)
    first = scheduler.choose_trial_to_run(controller)
    clock.now += faults.IDLE_GRACE_S + 1
    return first


def test_a_trial_tune_ended_with_retries_left_keeps_its_rung_open_and_an_idle_sweep_says_so(monkeypatch):
    """Tune ends a trial as ERROR on a second failure of one death while the trial waits to
    restart: it is owed its retries, so its rung waits; with nothing else to run, the watch
    ends the fit (SweepIdle) naming it, for the driver to restore it."""
    from search.faults import SweepIdle
    s = HalvingScheduler(4, rungs=(1,), epochs=2, reduction_factor=2)
    c = Controller(s)
    x, y, z, w = c.add("x", 16), c.add("y", 32), c.add("z", 64), c.add("w", 128)
    assert c.report(x, 1, 0.5) == PAUSE
    assert c.report(y, 1, 0.6) == PAUSE  # neither certain: z and w could rank above both
    for t in (z, w):
        t.retries_left = 2
        s.on_trial_error(c, t)  # Tune's final branch for a trial it had just requeued
        t.status = Trial.ERROR
    assert s.halving.pending_rung("z") == 0 and s.halving.promoted == []  # not NaN: owed a retry
    clock = Clock()
    assert idle_watch(monkeypatch, s, c, clock) is None  # idle: settled again, nothing to start
    with pytest.raises(SweepIdle) as e:
        s.choose_trial_to_run(c)
    assert e.value.rung == 1 and len(e.value.waiting) == 2
    assert e.value.waiting[0].startswith("z (hidden_size=64") and "error" in e.value.waiting[0]
    assert "rung 1 waits for 2 trials" in str(e.value)


def test_the_watch_takes_a_lost_decision_again_and_counts_a_trial_tune_ended_unseen(monkeypatch):
    """Whatever path lost them, an idle sweep's watch settles every trial from Tune's states: a
    trial that ended without telling the scheduler counts as NaN at its rung, and a paused trial
    whose rung let it go on is started, so the sweep moves on without a restore."""
    s = HalvingScheduler(4, rungs=(1,), epochs=2, reduction_factor=2)
    c = Controller(s)
    x, y, z, w = c.add("x", 16), c.add("y", 32), c.add("z", 64), c.add("w", 128)
    assert c.report(x, 1, 0.5) == PAUSE
    assert c.report(y, 1, 0.6) == PAUSE
    z.status = w.status = Trial.TERMINATED  # ended, and the scheduler was never told
    clock = Clock()
    monkeypatch.setattr("search.faults.time.monotonic", clock)
    assert s.choose_trial_to_run(c) is y  # NaN for z and w decided the rung: y goes on (and x)
    assert s.halving.promoted == [["y", "x"]]
    y.status = Trial.RUNNING  # started: the sweep is busy
    clock.now += 2
    assert s.choose_trial_to_run(c) is x
    y.status = Trial.PAUSED  # (as a stale PAUSE would leave it)
    s._ready.clear()  # a decision lost on the way: nothing queued though x and y may go on
    clock.now += 2
    assert s.choose_trial_to_run(c) is y  # the watch settles them, and they are started


def test_a_busy_sweep_is_never_idle(monkeypatch):
    s = HalvingScheduler(4, rungs=(1,), epochs=2, reduction_factor=2)
    c = Controller(s)
    x, y, _, _ = c.add("x", 16), c.add("y", 32), c.add("z", 64), c.add("w", 128)  # z and w run on
    assert c.report(x, 1, 0.5) == PAUSE
    assert c.report(y, 1, 0.6) == PAUSE
    clock = Clock()
    for _ in range(3):
        assert idle_watch(monkeypatch, s, c, clock) is None
