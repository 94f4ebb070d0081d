"""Ray start-up and the checks of a cluster: a local Ray of our own on loopback, or an existing
cluster reached fast or refused in one line, this project's code shipped to it, and every node
checked before anything is written (it can run the trainable; storage all nodes share); and how
many trials it runs at once.

Leaves out the sweep itself (sweep.py) and Ray's environment (rayenv.py).
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SweepError
from .ray_api import ray

if TYPE_CHECKING:
    from results.sweep.spec import SweepSpec


def cluster_address(address: str | None) -> str | None:
    """The existing cluster to use: `address`, else $RAY_ADDRESS, else None (a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def start_ray(address: str | None, verbose: bool, num_cpus: int | None = None) -> bool:
    """Connect to `address` (or $RAY_ADDRESS), or start a local Ray bound to 127.0.0.1 with no
    dashboard. Returns True when this call started it (so the caller shuts it down)."""
    if ray.is_initialized():
        return False
    with caller_sigterm_kept():
        _init_ray(cluster_address(address), verbose, num_cpus)
    return True


@contextlib.contextmanager
def interrupts_kept():
    """Note every Ctrl-C (SIGINT) inside the block, as well as raising KeyboardInterrupt: Python
    drops the exception when the signal lands in a callback it runs for a fork (Ray's start forks
    its processes), and the caller then checks the list it gets."""
    noted = []
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler or threading.current_thread() is not threading.main_thread():
        yield noted  # someone else handles SIGINT here (a notebook, a test runner's thread)
        return

    def handler(signum, frame):
        noted.append(signum)
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, handler)
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_ray() -> None:
    """ray.shutdown(), the caller's SIGTERM handler kept (Ray's shutdown resets the signal's
    action underneath Python's handler)."""
    with caller_sigterm_kept():
        ray.shutdown()


@contextlib.contextmanager
def caller_sigterm_kept():
    """Put back the SIGTERM handler the caller had once the block is done: ray.init installs
    its own (exit at once, and Ray's native handler prints a stack dump) and ray.shutdown resets
    the signal's action, so a SIGTERM would end the driver before it wrote its tables. The
    caller decides what a SIGTERM means."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def _init_ray(address: str | None, verbose: bool, num_cpus: int | None) -> None:
    kwargs = dict(log_to_driver=verbose, include_dashboard=False,
                  logging_level="INFO" if verbose else "ERROR")
    if address:
        check_address(address)
        # Ship this project's packages with the job (Ray's runtime_env): a node then needs only
        # Python, Ray and what the trainable imports (NumPy, threadpoolctl), not a copy of the
        # project. Under `ray job submit --working-dir`, Ray merges this with the job's own.
        ray.init(address=address, runtime_env={"py_modules": shipped_modules()}, **kwargs)
    else:
        check_loopback()
        # "local": always a new instance of our own. Without it ray.init() joins whatever
        # cluster the `ray_current_cluster` file in Ray's temporary folder names (one that
        # `ray start` left running), skipping the cluster checks and running there.
        ray.init(address="local", num_cpus=num_cpus, **kwargs)


def check_loopback() -> None:
    """Refuse to start a local Ray that would listen beyond 127.0.0.1: the address Ray would give
    the node (its servers bind there) is loopback only if Ray was imported after rayenv set it
    up for a local run, not when a script imported Ray first or this process set it up for a
    cluster (--address) before."""
    ip = ray.util.get_node_ip_address()
    if not ipaddress.ip_address(ip).is_loopback:
        raise SweepError(f"a local Ray would listen on {ip}, not on 127.0.0.1 alone: Ray was set up "
                         "in this process before this tool could keep it local (Ray was imported "
                         "before search, or a sweep here used --address). Start a new Python process "
                         "and import search first, or give --address for a cluster")


# A gRPC server (Ray's GCS is one) answers an HTTP/2 client preface with a SETTINGS frame.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def check_address(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast, naming --address, when HOST:PORT is unreachable, closed, or answers as
    something other than Ray's GCS (a gRPC server), before Ray's own connection attempts retry
    for minutes. "auto" and ray:// addresses are left to Ray."""
    import socket

    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"--address: {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as conn:
            conn.settimeout(timeout_s)
            conn.sendall(_H2_PREFACE)
            reply = conn.recv(9)
    except TimeoutError:
        raise SweepError(f"--address: {address} did not answer within {timeout_s:.0f} s") from None
    except OSError as e:
        raise SweepError(f"--address: nothing answers at {address} ({e.strerror or e})") from None
    if len(reply) < 4 or reply[3] != 4:  # no HTTP/2 SETTINGS frame: not a gRPC server
        raise SweepError(f"--address: {address} answers, but not as a Ray cluster (its head's "
                         f"GCS port, 6379 by default)")


# Filesystems whose files every node of a cluster can see.
SHARED_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph",
             "glusterfs", "afs", "9p", "virtiofs", "wekafs", "pvfs2", "orangefs")


def filesystem_type(path: str | Path, mounts_text: str | None = None) -> str:
    """The type of the filesystem holding `path` (from /proc/mounts; 'unknown' if unreadable)."""
    if mounts_text is None:
        try:
            mounts_text = Path("/proc/mounts").read_text()
        except OSError:
            return "unknown"
    path = str(Path(path).resolve())
    best, fstype = "", "unknown"
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = path == mount or path.startswith(mount.rstrip("/") + "/") or mount == "/"
        if inside and len(mount) > len(best):
            best, fstype = mount, fields[2]
    return fstype


def check_storage(storage_path: str, node_ips: set[str], flag: str, mounts_text: str | None = None) -> None:
    """A cluster whose nodes sit on more than one machine needs experiment storage they all
    share: a URI, or a path on a network filesystem. Results are not synced to the head."""
    if len(node_ips) < 2 or "://" in storage_path:
        return
    fstype = filesystem_type(storage_path, mounts_text)
    if fstype in SHARED_FS or fstype.startswith("fuse."):
        return
    raise SweepError(
        f"{flag}: {storage_path} is on a node-local filesystem ({fstype}) but the cluster's "
        f"{len(node_ips)} nodes are on {len(node_ips)} machines; give --storage a path every node "
        f"mounts (NFS, ...) or a URI such as s3://bucket/prefix")


def alive_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive")]


def cluster_node_ips() -> set[str]:
    return {n["NodeManagerAddress"] for n in alive_nodes()}


# The packages a trial runs, shipped to every node of a cluster (start_ray), where the code
# check then finds the driver's version.
CODE_PACKAGES = ("mlp_core", "search", "results")


def shipped_modules() -> list[str]:
    """The folders of CODE_PACKAGES as this process imports them (paths, not module objects:
    a job's runtime_env must be serialisable)."""
    import importlib
    return [str(Path(importlib.import_module(name).__file__).parent) for name in CODE_PACKAGES]


def code_fingerprint(packages=CODE_PACKAGES) -> str:
    """A hash of these packages' Python sources (relative paths and bytes), where they are
    imported from in this process: equal on two machines exactly when they run the same code."""
    import hashlib
    import importlib

    h = hashlib.sha256()
    for name in packages:
        root = Path(importlib.import_module(name).__file__).parent
        for f in sorted(root.rglob("*.py")):
            h.update(f"{name}/{f.relative_to(root).as_posix()}\0".encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def node_probe():
    """A function that, run on a node, returns (its code fingerprint, None), or (None, why a trial
    could not start there). Nested, so that Ray's pickler sends it by value: it reaches a node
    that lacks this project, and says so."""
    def probe(packages):
        try:
            import importlib

            importlib.import_module("search.trainable")  # everything a trial imports
            return importlib.import_module("search.cluster").code_fingerprint(packages), None
        except Exception as e:  # reported by the driver, naming the node
            return None, f"{type(e).__name__}: {e}"
    return probe


def check_cluster_code(flag: str, timeout_s: float = 120.0) -> tuple[int, str]:
    """Before a sweep on an existing cluster: every alive node that offers CPUs can import the
    trainable and runs the driver's version of this project. Otherwise every trial there would
    fail (and be retried) one after another, or run other code than the driver's. Returns the
    number of nodes checked and the sources' fingerprint they share."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in alive_nodes() if n.get("Resources", {}).get("CPU", 0) > 0]
    probe = ray.remote(num_cpus=0, max_retries=0)(node_probe())
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(CODE_PACKAGES) for n in nodes]
    try:
        answers = ray.get(refs, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise SweepError(f"{flag}: not every node of the cluster answered within {timeout_s:.0f} s") from None
    except ray.exceptions.RayError as e:  # a node died or refused the probe
        raise SweepError(f"{flag}: a node of the cluster could not be probed: {e}") from None
    mine = code_fingerprint()
    problems = node_code_problems(mine, [
        (n["NodeManagerAddress"], n["NodeID"], fp, err) for n, (fp, err) in zip(nodes, answers, strict=True)])
    if problems:
        raise SweepError(f"{flag}: " + "; ".join(problems))
    return len(nodes), mine


def node_code_problems(driver_fingerprint: str, answers: list[tuple[str, str, str | None, str | None]]
                       ) -> list[str]:
    """What is wrong with each node's answer (ip, node id, fingerprint, error), as messages."""
    problems = []
    for ip, node_id, fingerprint, error in answers:
        where = f"node {ip} ({node_id[:8]})"
        if error is not None:
            problems.append(f"{where} cannot run trials: {error}. Every node needs Python, Ray "
                            f"(the driver's version) and NumPy, threadpoolctl; this project's "
                            f"code travels with the job")
        elif fingerprint != driver_fingerprint:
            problems.append(f"{where} runs another version of this project's code than the driver "
                            f"(its sources hash to {fingerprint}, the driver's to {driver_fingerprint}); "
                            f"the job's copy did not reach it")
    return problems


def local_cpus(spec: SweepSpec) -> int | None:
    """The CPUs a local Ray offers: all of them, or just enough for --max-concurrent trials, so
    that Ray itself never runs more (a limit on the trials Tune creates would deadlock a halving
    barrier: the paused trials count as created)."""
    if not spec.max_concurrent:
        return None
    return min(os.cpu_count() or 1, spec.max_concurrent * spec.cpus_per_trial)


def searcher_limit(spec: SweepSpec, started: bool) -> int:
    """--max-concurrent on a Ray this sweep did not start, as the searcher's limit on the trials
    alive at once (0: none): right for schedulers that never pause a trial."""
    return 0 if started or spec.scheduler == "halving" else spec.max_concurrent


def slots(spec: SweepSpec, started: bool) -> int:
    """The trials that run at once: the slots the cluster's CPUs give, within --max-concurrent."""
    n = int(ray.cluster_resources().get("CPU", 0) // spec.cpus_per_trial)
    return min(n, spec.max_concurrent) if spec.max_concurrent and not started else n
