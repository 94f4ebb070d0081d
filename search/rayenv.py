"""Ray's environment for a driver of this tool. Ray reads some of it once, when it is imported:
search.api.run (and through it the run command) calls configure(address) before it imports the
sweep, and search/ray_api.py, the one module that imports Ray, calls configure() before it does,
for whoever imports it first; the first call decides.

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
    # Tune's own settings that cost per trial stay at Tune's defaults, which a user's value
    # overrides (BENCHMARKS.md, "Per-trial overhead" has why): TUNE_GLOBAL_CHECKPOINT_S "auto" (a resume
    # needs no fresher snapshot: trials that ended after it are in the run's tables and return
    # at once), TUNE_RESULT_BUFFER_LENGTH 1 (the halving scheduler decides each report at a rung
    # as it arrives) and TUNE_MAX_PENDING_TRIALS_PG "auto".
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if not (address or os.environ.get("RAY_ADDRESS")):
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
