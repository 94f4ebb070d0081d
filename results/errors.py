"""The error a sweep's settings and run folder raise (the Ray side raises it for a cluster too):
its message names the flag or the path, for the command line to print as one line (exit 2).
"""


class SweepError(Exception):
    """A setting, the run folder or the cluster is unusable; the message names the flag or the path."""
