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
    assert milestones(make_scheduler(SweepSpec())) == [1, 2, 4]
    assert milestones(make_scheduler(SweepSpec(epochs=3))) == [1, 2]
    assert milestones(make_scheduler(SweepSpec(epochs=1))) == []
    assert milestones(make_scheduler(SweepSpec(rungs=(2, 5)))) == [2, 5]


def test_geometric_rungs_are_rays_own():
    for grace, rf, epochs in ((1, 4, 10), (1, 3, 10), (2, 2, 20), (1, 4, 4)):
        ray_own = ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=grace, reduction_factor=rf)
        expected = [m for m, _ in ray_own._brackets[0]._rungs if m < epochs]
        assert list(geometric_rungs(grace, rf, epochs)) == sorted(expected)
        spec = SweepSpec(epochs=epochs, reduction_factor=rf, rungs=geometric_rungs(grace, rf, epochs))
        assert milestones(make_scheduler(spec)) == sorted(expected)


def test_each_rung_stops_by_hand_worked_cutoffs():
    scheduler = make_scheduler(SweepSpec())  # rungs 1, 2, 4; keep the top quarter
    scheduler.set_search_properties("val_accuracy", "max")
    trials = {i: SimpleNamespace(trial_id=f"t{i}") for i in range(1, 6)}
    for t in trials.values():
        scheduler.on_trial_add(None, t)
    sweep.STOPPED_EARLY.clear()

    def report(i, epoch, acc):
        return scheduler.on_trial_result(None, trials[i], {"epoch": epoch, "val_accuracy": acc})

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


def test_spec_written_before_rungs_resumes_with_rays_rungs():
    old = SweepSpec().to_json()
    del old["rungs"]
    old.update(grace_period=1, reduction_factor=3, epochs=10)
    assert SweepSpec.from_json(old).rungs == (1, 3, 9)
    assert SweepSpec.from_json(SweepSpec(rungs=(1, 3)).to_json()).rungs == (1, 3)


@pytest.mark.parametrize("rungs, message", [
    ((2, 1), "--rungs: 2,1 must be increasing"),
    ((1, 1), "--rungs: 1,1 must be increasing"),
    ((0, 2), "--rungs: 0,2: give epochs, positive whole numbers"),
    ((), "--rungs: empty"),
])
def test_bad_rungs_refused(rungs, message):
    with pytest.raises(SweepError, match=message):
        SweepSpec(rungs=rungs).validate()


def test_rungs_survive_the_pickling_a_resumed_tuner_goes_through():
    import pickle
    restored = pickle.loads(pickle.dumps(make_scheduler(SweepSpec(rungs=(1, 3, 5)))))
    assert milestones(restored) == [1, 3, 5]
