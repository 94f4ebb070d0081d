"""The run folder's append-only logs (rungs.jsonl, rounds.jsonl, journal.jsonl), one record type
for all (mlp_core.files): a record is a whole line or none; a line a crash cut short is left out
on reading and cut off before the next record, so none follows half a line; a whole line that is
not JSON is named with its file and line number; a link planted at a log is refused."""
from __future__ import annotations

import os

import pytest

from mlp_core.files import RecordError, log_append, log_entries, open_log
from results.errors import RunError
from results.folder import writer as W
from results.sweep import edges
from results.sweep.halving import RUNG_LOG, Halving, append_record, replay_record

LOGS = {  # each log, as its writer appends a record
    "rungs": lambda d: append_record(d / RUNG_LOG, "t1", 1, 0.5, (16, 0.1, 0.0)),
    "rounds": lambda d: edges.append_round(d, 1, {"lr": ("up", 0.2)}, 4),
    "journal": lambda d: W.append_journal(W.open_journal(d), {"trial_id": "t1", "result": {}}),
}
FILES = {"rungs": RUNG_LOG, "rounds": edges.ROUNDS_LOG, "journal": "journal.jsonl"}


@pytest.mark.parametrize("log", LOGS)
def test_a_line_cut_short_by_a_crash_is_left_out_and_cut_off_before_the_next_record(tmp_path, log):
    LOGS[log](tmp_path)
    path = tmp_path / FILES[log]
    whole = path.read_text()
    path.write_text(whole + whole[:17])  # the driver died in the middle of its second record
    assert len(log_entries(path)) == 1
    LOGS[log](tmp_path)  # the next driver's record follows the whole line, not the half one
    assert path.read_text() == whole * 2
    assert len(log_entries(path)) == 2


@pytest.mark.parametrize("log", LOGS)
def test_a_link_planted_at_a_log_is_refused_not_followed(tmp_path, log):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("")
    os.symlink(elsewhere, tmp_path / FILES[log])
    with pytest.raises(OSError):
        LOGS[log](tmp_path)
    assert elsewhere.read_text() == ""


def test_a_whole_line_that_is_not_json_is_named(tmp_path):
    path = tmp_path / RUNG_LOG
    with open_log(path) as log:
        log_append(log, {"trial_id": "a", "rung": 1, "value": 0.5, "key": [1]})
    path.write_text(path.read_text() + "edited by hand\n")
    with pytest.raises(RecordError, match=rf"{path}: line 2 is not JSON"):
        log_entries(path)
    with pytest.raises(RunError, match=rf"{path}: line 2 is not JSON"):  # as a run folder's reader says it
        replay_record(path, Halving(2, (1,), 2))
    assert log_entries(tmp_path / "none.jsonl") == []
