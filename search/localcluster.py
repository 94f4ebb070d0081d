"""A real multi-node Ray cluster on one machine, to try `--address` without one and for the
tests and benchmarks: `ray start` processes on 127.0.0.1 and free ports, each node with its own
CPUs, stopped by killing exactly the processes that carry this cluster's temporary folder (never
`ray stop`, which would stop every Ray on the machine); and the machine's processes read from
/proc, to find them.

Leaves out the sweep's own Ray (cluster.py). Starts Ray's command-line tool; imports no Ray.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env(token: bool = True) -> dict:
    """For the head and the driver: Ray's single-machine mode, in which the node IP is 127.0.0.1
    and Ray's servers bind to loopback only; and token authentication, or none. This Python's
    folder first on PATH, so that `python` in a job's entrypoint is this environment's, as it is
    for a user whose environment is active."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_AUTH_MODE": "token" if token else "disabled", "PATH": path}


# `ray start --address=127.0.0.1:P` for a second node. In single-machine mode Ray refuses to
# start a second node, and otherwise it rewrites 127.0.0.1 (in --address and the node IP) to the
# machine's external address, where our loopback-bound head is not. Keeping 127.0.0.1 as given
# makes the node's IP 127.0.0.1 too (found from the head's address), so it also binds loopback.
_WORKER_START = """
import sys
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host
from ray.scripts.scripts import main
sys.argv = ["ray", "start"] + sys.argv[1:]
main()
"""


class LocalCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, other_nodes_env: dict | None = None,
                 job_server: bool = False, as_default: bool = False, token: bool = True):
        """`other_nodes_env`: extra environment for the nodes after the head (and so for their
        workers), e.g. a PYTHONPATH that breaks an import there, as on a badly set-up machine.
        `job_server`: the head runs Ray's dashboard, whose job server `ray job submit` talks
        to, on 127.0.0.1 at `self.job_address` (needs ray[default]). `as_default`: the head's
        temporary folder is `self.temp/ray`, the layout of Ray's default /tmp/ray, so that a
        process with RAY_TMPDIR=self.temp finds it as Ray finds a cluster `ray start` left
        running (its `ray_current_cluster` file). `token`: token authentication (Ray's default
        since 2.59), or a cluster without it."""
        self.token = token
        # short: Ray puts unix sockets under it (path length limit)
        self.temp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        common = [f"--num-cpus={cpus_per_node}", "--disable-usage-stats"]
        dashboard = ["--include-dashboard=false"]
        if job_server:
            dashboard_port = free_port()
            self.job_address = f"http://127.0.0.1:{dashboard_port}"
            dashboard = ["--include-dashboard=true", "--dashboard-host=127.0.0.1",
                         f"--dashboard-port={dashboard_port}"]
        try:
            head_temp = self.temp / "ray" if as_default else self.temp
            self._start([RAY, "start", "--head", f"--port={self.port}", *dashboard,
                         f"--temp-dir={head_temp}", *common], cluster_env(token))
            worker_env = {**os.environ, "RAY_AUTH_MODE": "token" if token else "disabled",
                          "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", **(other_nodes_env or {})}
            for k in range(1, nodes):
                # each node its own temporary folder, as on separate machines: nodes sharing one
                # also share runtime_env's unpacked files, and one node's cleanup then deletes
                # the folder a job's driver on another runs in
                self._start([sys.executable, "-c", _WORKER_START, f"--address={self.address}",
                             f"--temp-dir={self.temp / f'n{k}'}", *common], worker_env)
            self._wait_for_nodes(nodes)
        except BaseException:
            self.stop()
            raise

    def _start(self, args, env):
        args = [*args, f"--dashboard-agent-listen-port={free_port()}"]
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            raise RuntimeError(f"ray start failed: {r.stdout}\n{r.stderr}")

    def _wait_for_nodes(self, n, timeout=60):
        code = (f"import ray; ray.init(address='{self.address}', logging_level='ERROR'); "
                "print(sum(1 for x in ray.nodes() if x['Alive']))")
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            r = subprocess.run([sys.executable, "-c", code], env=cluster_env(self.token),
                               capture_output=True, text=True, timeout=60)
            if r.returncode == 0 and r.stdout.strip().splitlines()[-1:] == [str(n)]:
                return
            time.sleep(1)
        raise RuntimeError(f"the cluster did not reach {n} nodes")

    def node_ids(self) -> set[str]:
        """The ids of this cluster's alive nodes."""
        code = (f"import ray; ray.init(address='{self.address}', logging_level='ERROR'); "
                "print(' '.join(n['NodeID'] for n in ray.nodes() if n['Alive']))")
        r = subprocess.run([sys.executable, "-c", code], env=cluster_env(self.token), capture_output=True,
                           text=True, timeout=120)
        return set(r.stdout.split())

    def pids(self) -> list[int]:
        """Processes of this cluster: those whose command line names its temporary folder or
        its session, and their descendants (workers, agents)."""
        procs = processes()
        own = {p.pid for p in procs if str(self.temp) in p.cmdline}
        return sorted(with_descendants(own, procs))

    def stop(self):
        for _ in range(3):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        shutil.rmtree(self.temp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    sid: int
    cmdline: str


def processes() -> list[Proc]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "(comm)": state ppid pgrp session
        out.append(Proc(int(d.name), int(fields[1]), int(fields[3]), cmd))
    return out


def with_descendants(roots: set[int], procs: list[Proc] | None = None) -> set[int]:
    procs = procs if procs is not None else processes()
    found = set(roots)
    grown = True
    while grown:
        new = {p.pid for p in procs if p.ppid in found and p.pid not in found}
        found |= new
        grown = bool(new)
    return found


def session_pids(sid: int, marker: str | None = None) -> list[int]:
    """Processes of session `sid` (a driver started with start_new_session=True: its Ray
    processes stay in its session even after the driver dies), those whose command line holds
    `marker` if given."""
    return [p.pid for p in processes() if p.sid == sid and (marker is None or marker in p.cmdline)]


def kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid`."""
    for pid in session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
