"""search: the early-stopping schedule, driven by hand without starting Ray: the rungs are the
spec's (not Ray's geometric ones) and each rung stops exactly as ASHA's rule says, worked out
below by hand."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from search import sweep
from search.space import geometric_rungs
from search.sweep import SweepError, SweepSpec, make_scheduler

STOP, GO = TrialScheduler.STOP, TrialScheduler.CONTINUE


def milestones(scheduler) -> list[int]:
    (bracket,) = scheduler._brackets
    return sorted(m for m, _ in bracket._rungs)


def test_rungs_are_the_specs_and_only_those_before_the_last_epoch():
    assert milestones(make_scheduler(SweepSpec())) == [0.25, 1, 2, 4]
    assert milestones(make_scheduler(SweepSpec(epochs=3))) == [0.25, 1, 2]
    assert milestones(make_scheduler(SweepSpec(epochs=1))) == [0.25]
    assert milestones(make_scheduler(SweepSpec(epochs=1, rungs=(1, 2)))) == []
    assert milestones(make_scheduler(SweepSpec(rungs=(2, 5)))) == [2, 5]


def test_geometric_rungs_are_rays_own():
    for grace, rf, epochs in ((1, 4, 10), (1, 3, 10), (2, 2, 20), (1, 4, 4)):
        ray_own = ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=grace, reduction_factor=rf)
        expected = [m for m, _ in ray_own._brackets[0]._rungs if m < epochs]
        assert list(geometric_rungs(grace, rf, epochs)) == sorted(expected)
        spec = SweepSpec(epochs=epochs, reduction_factor=rf, rungs=geometric_rungs(grace, rf, epochs))
        assert milestones(make_scheduler(spec)) == sorted(expected)


def driven(spec: SweepSpec, prefix: str):
    """The spec's scheduler with five trials PREFIX1..PREFIX5 added, and report(i, epoch, acc)
    that hands it trial i's result and returns its decision."""
    scheduler = make_scheduler(spec)
    scheduler.set_search_properties("val_accuracy", "max")
    trials = {i: SimpleNamespace(trial_id=f"{prefix}{i}") for i in range(1, 6)}
    for t in trials.values():
        scheduler.on_trial_add(None, t)
    sweep.STOPPED_EARLY.clear()

    def report(i, epoch, acc):
        return scheduler.on_trial_result(None, trials[i], {"epoch": epoch, "val_accuracy": acc})
    return scheduler, report


def test_each_rung_stops_by_hand_worked_cutoffs():
    _, report = driven(SweepSpec(rungs=(1, 2, 4)), "t")  # keep the top quarter

    # Rung 1. The cutoff is the 75th percentile of the values recorded there before:
    assert report(1, 1, 0.5) == GO  # nothing recorded yet
    assert report(2, 1, 0.6) == GO  # {0.5}: 0.5
    assert report(3, 1, 0.7) == GO  # {0.5, 0.6}: 0.575
    assert report(4, 1, 0.8) == GO  # {0.5, 0.6, 0.7}: 0.65
    assert report(5, 1, 0.4) == STOP  # {0.5 .. 0.8}: 0.725
    # Rung 2 (Ray's geometric rungs for reduction factor 4 have none at epoch 2):
    assert report(2, 2, 0.65) == GO  # nothing recorded yet
    assert report(3, 2, 0.9) == GO  # {0.65}: 0.65
    assert report(1, 2, 0.6) == STOP  # {0.65, 0.9}: 0.8375
    # Epoch 3 is no rung: a falling value goes on.
    assert report(3, 3, 0.1) == GO
    assert sweep.STOPPED_EARLY == {"t5", "t1"}
    sweep.STOPPED_EARLY.clear()


def test_a_rung_inside_the_first_epoch_stops_by_hand_worked_cutoffs():
    scheduler, report = driven(SweepSpec(), "q")  # rungs 0.25, 1, 2, 4

    # Rung 0.25, the same rule: the 75th percentile of the values recorded there before.
    assert report(1, 0.25, 0.30) == GO  # nothing recorded yet
    assert report(2, 0.25, 0.20) == STOP  # {0.30}: 0.30
    assert report(3, 0.25, 0.40) == GO  # {0.30, 0.20}: 0.275
    # At epoch 1 only rung 1 judges (rungs are checked highest first, one per result).
    assert report(1, 1, 0.60) == GO  # rung 1 empty
    assert report(3, 1, 0.50) == STOP  # {0.60}: 0.60
    # A trial whose first report is epoch 1 is judged at rung 1 and never enters rung 0.25.
    assert report(4, 1, 0.70) == GO  # {0.60, 0.50}: 0.575
    (bracket,) = scheduler._brackets
    assert dict(bracket._rungs)[0.25] == {"q1": 0.30, "q2": 0.20, "q3": 0.40}
    assert sweep.STOPPED_EARLY == {"q2", "q3"}
    sweep.STOPPED_EARLY.clear()



    old = SweepSpec().to_json()
    del old["rungs"]
    old.update(grace_period=1, reduction_factor=3, epochs=10)
    assert SweepSpec.from_json(old).rungs == (1, 3, 9)
    assert SweepSpec.from_json(SweepSpec(rungs=(1, 3)).to_json()).rungs == (1, 3)


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


def test_rungs_survive_the_pickling_a_resumed_tuner_goes_through():
    import pickle
    restored = pickle.loads(pickle.dumps(make_scheduler(SweepSpec(rungs=(0.5, 1, 3, 5)))))
    assert milestones(restored) == [0.5, 1, 3, 5]


def test_recorder_keeps_reports_inside_the_first_epoch_apart(tmp_path):
    """partial_epochs.csv holds the reports from inside the first epoch; history.csv keeps one
    row per whole epoch; a trial stopped at a partial rung still gets its results.csv row."""
    import pandas as pd

    from search.callbacks import RunRecorder

    stopped = set()
    rec = RunRecorder(tmp_path, epochs=3, stopped_early=stopped)
    trial = {t: SimpleNamespace(trial_id=t, path=None,
                                config={"hidden_size": 8, "learning_rate": 0.1, "l2": 0.0})
             for t in ("a", "b")}

    def result(tid, epoch, acc, partial=False):
        r = {"epoch": epoch, "val_accuracy": acc, "val_loss": 1 - acc, "train_loss": 1.0,
             "train_accuracy": acc, "time_s": 0.1 * epoch, "ended_at": 0.0, "node_id": "n",
             "blas_threads": 1, "diverged": False}
        if partial:
            r["partial"] = True
        rec.on_trial_result(0, [], trial[tid], r)

    result("a", 0.25, 0.2, partial=True)
    stopped.add("a")  # as ASHA's STOP at rung 0.25 records it
    rec.on_trial_complete(0, [], trial["a"])
    result("b", 0.25, 0.4, partial=True)
    result("b", 1, 0.6)
    result("b", 2, 0.7)
    # b's worker died inside epoch 1 of a second attempt begun from scratch: its earlier epochs
    # belong to the abandoned attempt
    result("b", 0.25, 0.45, partial=True)
    result("b", 1, 0.65)
    rec.write()
    history = pd.read_csv(tmp_path / "history.csv")
    partial = pd.read_csv(tmp_path / "partial_epochs.csv")
    results = pd.read_csv(tmp_path / "results.csv")
    assert list(zip(history["trial_id"], history["epoch"])) == [("b", 1)]
    assert history["val_accuracy"].tolist() == [0.65]
    assert sorted(zip(partial["trial_id"], partial["epoch"], partial["val_accuracy"])) == [
        ("a", 0.25, 0.2), ("b", 0.25, 0.45)]
    assert results[["trial_id", "status", "epochs", "val_accuracy"]].values.tolist() == [
        ["a", "stopped_early", 0.25, 0.2]]
    # a resumed driver reads both files back
    again = RunRecorder(tmp_path, epochs=3)
    assert again.partial["a"][0.25]["val_accuracy"] == 0.2 and again.finished == frozenset({"a"})
    assert set(again.history["b"]) == {1}


def test_a_resumed_scheduler_refills_every_rung_from_the_tables():
    scheduler = make_scheduler(SweepSpec())
    scheduler.set_search_properties("val_accuracy", "max")
    sweep.PRIOR_RESULTS.clear()
    sweep.PRIOR_RESULTS.update({("a", 0.25): 0.3, ("b", 0.25): 0.5, ("b", 1): 0.7, ("b", 2): 0.8,
                                ("c", 3): 0.9})  # epoch 3 is no rung: ignored
    new = SimpleNamespace(trial_id="n")
    scheduler.on_trial_add(None, new)
    # {0.3, 0.5}: cutoff 0.45, so 0.4 stops although this scheduler saw no result before
    assert scheduler.on_trial_result(None, new, {"epoch": 0.25, "val_accuracy": 0.4}) == STOP
    (bracket,) = scheduler._brackets
    rungs = dict(bracket._rungs)
    assert rungs[0.25] == {"a": 0.3, "b": 0.5, "n": 0.4} and rungs[1] == {"b": 0.7}
    assert rungs[2] == {"b": 0.8} and rungs[4] == {}
    sweep.PRIOR_RESULTS.clear()
    sweep.STOPPED_EARLY.clear()
