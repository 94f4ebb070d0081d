"""The errors of a sweep's settings (SweepError: the Ray side raises it for a cluster too; the
command line prints it as one line, exit 2) and of a run folder's files (RunError, exit 1), and
the run folder's JSON-lines logs read with the latter: each message names the flag or the file.
"""
from __future__ import annotations

import os

from mlp_core.files import RecordError, log_entries


class SweepError(Exception):
    """A setting, the run folder or the cluster is unusable; the message names the flag or the path."""


class RunError(Exception):
    """A run folder is missing, incomplete or malformed; the message names the file."""


def read_log(path: str | os.PathLike) -> list[dict]:
    """A run folder's JSON-lines log (rungs.jsonl, rounds.jsonl, journal.jsonl), oldest first: a
    last line cut short by a crash is left out; a whole line that is not JSON is a RunError."""
    try:
        return log_entries(path)
    except RecordError as e:
        raise RunError(str(e)) from None
