"""What the tests share (not a test module): the repository's paths and small data, the command
line run as a user runs it, and a driver started in its own session, waited on and killed."""
from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mlp_core.data import read_idx_pair, write_idx, write_split  # noqa: F401 (the tests import them from here)
from results.sweep.settings import HYPERPARAMETERS
from results.views.compare import differences, tables  # noqa: F401 (the tests import them from here)
from search.localcluster import kill_session, processes, session_pids  # noqa: F401 (the tests import them from here)

ROOT = Path(__file__).resolve().parents[1]
# The real MNIST test set the repository carries (tests/data/README.md says where it is from).
MNIST_DIR = ROOT / "tests" / "data" / "mnist"


def write_small_mnist(d: Path) -> Path:
    """MNIST's test set split 8,000 / 2,000 into `d` in the four-file layout (the 8,000 as the
    training files): the small real dataset of the tests' command lines."""
    return write_split(d, *read_idx_pair(MNIST_DIR / "t10k-images-idx3-ubyte.gz",
                                         MNIST_DIR / "t10k-labels-idx1-ubyte.gz"), 8000)


def read_idx_raw(path, offset: int):
    """An IDX file's bytes past its header, read without mlp_core (an independent check)."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def dead_url() -> str:
    """A loopback address nothing listens on: downloads fail at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def cli(*args, timeout=600, env_extra=None) -> subprocess.CompletedProcess:
    """run_search.py with these arguments, to its end, offline."""
    env = {**os.environ, "MLP_SWEEP_MIRRORS": dead_url(), "PYTHONUNBUFFERED": "1",
           **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "run_search.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def start(args, write_every_s: float | None = None) -> subprocess.Popen:
    """The run command in its own session. write_every_s: how often the driver rewrites its
    tables instead of RunRecorder's few seconds (set in the driver before it starts)."""
    env = {**os.environ, "MLP_SWEEP_MIRRORS": dead_url(), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(ROOT / "run_search.py")]
    if write_every_s is not None:
        command = [sys.executable, "-c",
                   "import sys, run_search; from search.callbacks import RunRecorder; "
                   f"RunRecorder.WRITE_EVERY_S = {write_every_s!r}; sys.exit(run_search.main(sys.argv[1:]))"]
    return subprocess.Popen([*command, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT, start_new_session=True)


def wait_for(predicate, timeout=180, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def cmdline(pid: int) -> str:
    return next((p.cmdline for p in processes() if p.pid == pid), "")


KEY = list(HYPERPARAMETERS)  # a trial's configuration: how tables of two runs are keyed


def assert_same(a, b):
    """Run b's tables are run a's (results.views.compare: all but ids, times and nodes)."""
    found = differences(a, b)
    assert not found, "\n".join(found)
