"""The one error a sweep's settings, run folder or cluster raise: its message names the flag or
the path, for the command line to print as one line (exit 2).
"""


class SweepError(Exception):
    """A setting, the run folder or the cluster is unusable; the message names the flag or the path."""
