"""Ray's environment for a driver of this tool. Ray reads some of it once, when it is imported, so
it is set before: the entry point decides, visibly (search.api.run, and through it the run
command, calls configure(address) before it imports the sweep); search/ray_api.py, the one
module that imports Ray, calls ensure() first, which sets a local run's (or $RAY_ADDRESS's)
environment for a script or test that imports it without an entry point. A process keeps what
it set: a later sweep of the other kind (local after cluster, or cluster after local) is
refused with the reason, not run with the wrong settings.

Leaves out starting Ray (cluster.py).
"""
from __future__ import annotations

import os

_configured_for: str | None = None  # "local" or "cluster", once set


class WrongRayEnvironment(RuntimeError):
    """A sweep of the other kind than the one this process set Ray's environment for."""


def ensure() -> None:
    """Ray's environment for a local run (or the cluster $RAY_ADDRESS names), unless an entry
    point has set it."""
    if _configured_for is None:
        configure()


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
    connect). Values already set win. Called again for the other kind of run (Ray keeps what it
    read when it was imported): WrongRayEnvironment."""
    global _configured_for
    kind = "cluster" if (address or os.environ.get("RAY_ADDRESS")) else "local"
    if _configured_for is not None:
        if kind != _configured_for:
            raise WrongRayEnvironment(
                f"this Python process set up Ray for a {_configured_for} run, which Ray keeps once it is "
                f"imported; run the sweep on {'a cluster' if kind == 'cluster' else 'a local Ray'} in a new "
                f"Python process (or a new notebook kernel)")
        return
    _configured_for = kind
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
