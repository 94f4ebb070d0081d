"""search.callbacks.RunRecorder at scale, driven by hand without Ray: a trial that ends is one
appended journal line, not a rewrite of the tables; a driver killed between rewrites loses no
finished trial (readers and a resumed driver see the journal's trials, and the resumed tables
are byte for byte those of a driver that never stopped); a journal line cut short by a crash is
ignored, a malformed one named."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from mlp_core.train import MID_EPOCH
from results.folder import table as T
from results.folder import writer as W
from search.callbacks import RunRecorder
from search.checkpoints import PausedCheckpoints
from search.progress import Progress

NAN = float("nan")


def trial(i: int):
    return SimpleNamespace(trial_id=f"t{i:05d}", path=None,
                           config={"hidden_size": 16 * (1 + i % 2), "learning_rate": 0.001 * (1 + i),
                                   "l2": 0.01})


def report(rec, t, epoch, acc, partial=False, diverged=False):
    r = {"epoch": epoch, "val_accuracy": acc, "val_loss": 1 - acc, "train_loss": 1.25 / (1 + epoch),
         "train_accuracy": acc, "time_s": 0.1 * (1 + epoch), "ended_at": 1.8e9 + epoch,
         "node_id": "n", "blas_threads": 1, "diverged": diverged, "val_images": 1600}
    if partial:
        r[MID_EPOCH] = True
    rec.on_trial_result(0, [], t, r)


def run_trials(rec, n: int):
    """n trials of 2 epochs: every third stopped at the rung 0.25, one diverged, the rest
    completed, reported in an order no table is sorted by."""
    for i in reversed(range(n)):
        t = trial(i)
        rec.on_trial_start(0, [], t)
        report(rec, t, 0.25, 0.1 + i / (3 * n), partial=True)
        if i % 3:
            report(rec, t, 1, 0.5 + i / (3 * n))
            report(rec, t, 2, NAN if i == 4 else 0.6 + i / (3 * n), diverged=i == 4)
        rec.on_trial_complete(0, [], t)


@pytest.fixture
def no_periodic_rewrite(monkeypatch):
    monkeypatch.setattr(RunRecorder, "WRITE_EVERY_S", 1e9)


def test_trial_ends_append_to_the_journal_instead_of_rewriting_the_tables(tmp_path, monkeypatch,
                                                                         no_periodic_rewrite):
    rewrites = []
    write = W.write_rows_atomic
    monkeypatch.setattr(W, "write_rows_atomic", lambda rows, columns, path, cache=None: (
        rewrites.append(path), write(rows, columns, path, cache)))
    rec = RunRecorder(tmp_path, epochs=2)
    assert sorted(p.name for p in rewrites) == ["history.csv", "results.csv"]  # empty, at once
    run_trials(rec, 1000)
    assert len(rewrites) == 2  # none of the 1,000 trial ends rewrote a table
    assert len((tmp_path / T.JOURNAL_FILE).read_text().splitlines()) == 1000
    assert len(rec.rows) == 1000 and rec.counts[T.Status.STOPPED_EARLY] == 334 and rec.counts[T.Status.DIVERGED] == 1
    assert rec.best == pytest.approx(0.6 + 998 / 3000)
    progress = Progress(rec, 1000, stream=open("/dev/null", "w"))
    assert progress.line().startswith("trials 1000/1000 done, 0 running, 334 stopped early, 1 diverged")
    rec.write()
    assert len(rewrites) == 5 and (tmp_path / T.JOURNAL_FILE).read_text() == ""


def test_a_driver_killed_between_rewrites_loses_no_finished_trial(tmp_path, no_periodic_rewrite):
    (tmp_path / "ref").mkdir()
    (tmp_path / "k").mkdir()
    ref = RunRecorder(tmp_path / "ref", epochs=2)
    run_trials(ref, 60)
    ref.write()
    killed = RunRecorder(tmp_path / "k", epochs=2)
    run_trials(killed, 60)  # ... and the driver dies: no rewrite, no close
    assert len(pd.read_csv(tmp_path / "k" / T.RESULTS_FILE)) == 0  # the tables still empty
    for load in (T.load_results, T.load_history, T.load_partial):  # readers see the journal
        pd.testing.assert_frame_equal(load(tmp_path / "k"), load(tmp_path / "ref"), check_exact=True)
    resumed = RunRecorder(tmp_path / "k", epochs=2)
    assert resumed.finished == ref.finished and resumed.counts == ref.counts and resumed.best == ref.best
    assert (tmp_path / "k" / T.JOURNAL_FILE).read_text() == ""  # in the tables now
    for name in (T.RESULTS_FILE, T.HISTORY_FILE, T.PARTIAL_FILE):
        assert (tmp_path / "k" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def test_a_restored_trials_replayed_report_brings_back_the_rows_a_dead_driver_never_wrote(
        tmp_path, no_periodic_rewrite):
    """A driver that dies before writing its tables (SIGKILL, or Ray's processes ended under it
    by a SIGTERM to the whole process group) had rows of unfinished trials only in memory; a
    trial restored from its newest checkpoint replays that checkpoint's report with the reports
    before it (EARLIER), so the resumed tables are the undisturbed ones (found by the chaos
    campaign: a partial_epochs.csv short of 6 rows)."""
    from search.trainable import EARLIER, packed

    (tmp_path / "ref").mkdir()
    ref = RunRecorder(tmp_path / "ref", epochs=2)
    run_trials(ref, 6)
    ref.write()
    (tmp_path / "k").mkdir()
    resumed = RunRecorder(tmp_path / "k", epochs=2)  # the first driver's tables: empty
    for i in reversed(range(6)):
        t = trial(i)
        rows = [{**r, MID_EPOCH: r["epoch"] < 1} for r in
                [*T.load_partial(tmp_path / "ref").query(f"trial_id == '{t.trial_id}'").to_dict("records"),
                 *T.load_history(tmp_path / "ref").query(f"trial_id == '{t.trial_id}'").to_dict("records")]]
        rows = [{k: v for k, v in r.items() if k != "trial_id"} for r in rows]
        resumed.on_trial_start(0, [], t)
        # restored from its newest checkpoint: that report, with the ones before it, as packed for Tune
        resumed.on_trial_result(0, [], t, packed({**rows[-1], EARLIER: rows[:-1]}, top=("val_accuracy",)))
        resumed.on_trial_complete(0, [], t)
    resumed.write()
    for name in (T.HISTORY_FILE, T.PARTIAL_FILE):
        assert (tmp_path / "k" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def test_a_journal_line_cut_short_is_ignored_and_a_malformed_one_named(tmp_path, no_periodic_rewrite):
    rec = RunRecorder(tmp_path, epochs=2)
    run_trials(rec, 3)
    journal = tmp_path / T.JOURNAL_FILE
    text = journal.read_text()
    journal.write_text(text + text.splitlines()[0][:40])  # a crash in the middle of a write
    assert [e["trial_id"] for e in T.read_journal(tmp_path)] == ["t00002", "t00001", "t00000"]
    journal.write_text("not json\n" + text)
    with pytest.raises(T.RunError, match=rf"{journal}: line 1 is not JSON"):
        T.load_results(tmp_path)


def test_a_trial_in_the_tables_and_the_journal_counts_once(tmp_path, no_periodic_rewrite):
    """A driver killed after a rewrite but before it emptied the journal."""
    rec = RunRecorder(tmp_path, epochs=2)
    run_trials(rec, 6)
    journal = (tmp_path / T.JOURNAL_FILE).read_text()
    rec.write()
    (tmp_path / T.JOURNAL_FILE).write_text(journal)
    again = RunRecorder(tmp_path, epochs=2)
    assert len(again.rows) == 6 and sum(again.counts.values()) == 6
    assert len(T.load_results(tmp_path)) == 6 and not T.load_history(tmp_path).duplicated(["trial_id", "epoch"]).any()


def test_summaries_without_pandas_match_the_dataframe_rule():
    """Best epoch: the highest finite validation accuracy, the earliest among equals; the last
    epoch when none is finite."""
    rows = [{"epoch": e, "val_accuracy": a, "val_loss": 1.0, "train_loss": 1.0, "train_accuracy": 0.5,
             "time_s": 0.5} for e, a in [(1, 0.7), (2, 0.9), (3, 0.9), (4, NAN)]]
    cfg = {"hidden_size": 16, "learning_rate": 0.1, "l2": 0.0}
    row = T.summarise_trial("x", cfg, T.Status.COMPLETED, rows, "n")
    assert row["best_epoch"] == 2 and row["epochs"] == 4 and row["time_s"] == 2.0
    none = T.summarise_trial("y", cfg, T.Status.DIVERGED, [dict(r, val_accuracy=NAN) for r in rows], "n")
    assert none["best_epoch"] == 0 and math.isnan(none["val_accuracy"]) and none["epochs"] == 4


def test_paused_trials_and_their_checkpoints_are_counted(tmp_path, no_periodic_rewrite):
    """What halving's barriers hold: the trials paused at a rung and the bytes of every checkpoint
    they keep, counted at most once a second; the peak is what the sweep reports at its end. A
    trial retried keeps its checkpoints; one that ends does not count."""
    rec, tally = RunRecorder(tmp_path, epochs=2), PausedCheckpoints(tmp_path)
    trials = [SimpleNamespace(**vars(trial(i)), status="RUNNING") for i in range(4)]
    for i, t in enumerate(trials):
        folder = tmp_path / f"ckpt{i}"
        folder.mkdir()
        (folder / "state.npz").write_bytes(b"x" * 1000 * (i + 1))
        tally.on_checkpoint(0, trials, t, SimpleNamespace(path=str(folder)))
        tally.on_checkpoint(0, trials, t, SimpleNamespace(path=str(folder)))  # every one is kept
    tally.on_trial_complete(0, trials, trials[3])
    trials[3].status = "PAUSED"  # (a status Tune would not give it: ended trials hold nothing)
    trials[0].status = trials[2].status = "PAUSED"
    tally.on_trial_error(0, trials, SimpleNamespace(**vars(trials[2]), should_recover=lambda: True))
    tally.on_step_end(0, trials)
    assert (tally.paused, tally.paused_bytes, tally.peak) == (3, 8000, (3, 8000))
    trials[2].status = "RUNNING"
    tally.on_step_end(0, trials)  # within the second: not counted again
    assert tally.paused == 3
    tally._last_tally -= 1.0
    tally.on_step_end(0, trials)
    assert (tally.paused, tally.paused_bytes, tally.peak) == (2, 2000, (3, 8000))
    progress = Progress(rec, 3, stream=open("/dev/null", "w"), paused=tally)
    for t in trials[:3]:
        progress.on_trial_start(0, trials, t)
    assert progress.line().startswith("trials 0/3 done, 1 running")
    assert "2 paused at a rung (2 kB of checkpoints)" in progress.line()


def test_a_line_the_disk_cannot_take_is_cut_off_again_and_the_journal_named(tmp_path):
    """A journal or rung-log line that a full disk cuts short is removed again, so no later line
    follows half a line, and the error names the file and how much it could not take."""
    import errno

    from mlp_core.files import DiskFull, append_line
    from results.folder import writer as W

    journal = W.open_journal(tmp_path)
    append_line(journal, '{"trial_id": "a"}\n')

    class Full:  # the journal on a disk that takes 5 bytes more, then no more
        name = journal.name

        def fileno(self):
            return journal.fileno()

        def flush(self):
            journal.flush()

        def write(self, text):
            journal.write(text[:5])
            journal.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFull, match=r"disk full: the filesystem at .* could not take 101 bytes "
                                       r"written to .*journal\.jsonl"):
        append_line(Full(), "x" * 100 + "\n")
    journal.close()
    assert (tmp_path / "journal.jsonl").read_text() == '{"trial_id": "a"}\n'
