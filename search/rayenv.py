"""Ray's environment for a driver of this tool. Ray reads some of it once, when it is imported:
the entry points (the run command, search.api.run) call configure(address) before they import
the modules that import Ray, and each of those modules calls configure() too, in case it is
imported first; the first call decides.

Leaves out starting Ray (cluster.py).
"""
from __future__ import annotations

import os


_configured = False


def configure(address: str | None = None) -> None:
    """For a sweep on the cluster at `address` (or $RAY_ADDRESS), or on a local Ray of its own
    without one: no per-trial CSV/JSON/TensorBoard loggers (our tables replace them); no metric
    check on the bare "done" result of a finished trial that a resume skips at once; Tune's
    classic output (off anyway: verbose 0). Without a cluster address, the local Ray gets token
    authentication (Ray's own default since 2.59, said explicitly) and loopback only: Ray treats
    the node as a single-machine cluster with IP 127.0.0.1, so every server it starts binds
    there instead of on all interfaces (ray.init(_node_ip_address="127.0.0.1") alone is
    re-resolved to the external address). For a cluster the user's settings stand: on a cluster
    that runs without token authentication, a driver forced into it loses its trials (or cannot
    connect). Values already set win, and so does the first call: Ray keeps what it read when
    it was imported."""
    global _configured
    if _configured:
        return
    _configured = True
    # Tune's own settings that cost per trial, measured at 175 to 10,000 trials (BENCHMARKS.md
    # section 3) and left at Tune's defaults, which a user's value overrides:
    # - TUNE_GLOBAL_CHECKPOINT_S "auto": an experiment snapshot at least every 10 s and at most
    #   5% of the time (4-5% measured at 10,000 trials); a resume needs no fresher one, since
    #   trials that ended after it are in the run's tables and return at once.
    # - TUNE_RESULT_BUFFER_LENGTH 1: the halving scheduler declines buffered results (a report
    #   at a rung is decided as it arrives), and a trial reports only 2 to 11 times.
    # - TUNE_MAX_PENDING_TRIALS_PG "auto" (200 for our searcher): 2 instead made no difference
    #   this machine's noise let through, and the default serves autoscaling clusters.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if not (address or os.environ.get("RAY_ADDRESS")):
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
