"""The sweep: validated settings, the run folder, Ray start-up and the Tune experiment.

Leaves out argument parsing (run_search.py) and everything after the sweep (results/).
"""
from __future__ import annotations

import datetime as _dt
import logging
import numbers
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Before Ray/Tune read them: no per-trial CSV/JSON/TensorBoard loggers (our tables replace them);
# no metric check on the bare "done" result of a finished trial that a resume skips at once.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Ray reads these when it is imported. Without a cluster address, the local Ray gets token
# authentication (Ray's own default since 2.59, said explicitly) and loopback only: Ray treats
# the node as a single-machine cluster with IP 127.0.0.1, so every server it starts binds there
# instead of on all interfaces (ray.init(_node_ip_address="127.0.0.1") alone is re-resolved to
# the external address). For a cluster the user's settings stand.
if not os.environ.get("RAY_ADDRESS"):
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler  # noqa: E402
from ray.tune.search.basic_variant import BasicVariantGenerator  # noqa: E402

from mlp_core.data import DATASETS, N_CLASSES, load_dataset, resolve_data_dir  # noqa: E402
from mlp_core.train import EPOCH, VAL_ACCURACY  # noqa: E402
from results import table as T  # noqa: E402

from . import space  # noqa: E402
from .callbacks import Progress, RunRecorder  # noqa: E402
from .runfolder import LOCK_FILE, FolderInUse, holder, lock_folder  # noqa: E402
from .scheduler import RUNG_LOG, HalvingScheduler  # noqa: E402
from .trainable import CPUS_PER_TRIAL, PARTIAL_EPOCHS, SCALED_PARTIAL_VAL, train_mlp  # noqa: E402

TUNE_DIR = "tune"
SCHEDULERS = ("halving", "asha", "none")
PARTIAL_VAL = ("scaled", "full")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # a whole name: NAME_RE.fullmatch


class SweepError(Exception):
    """A setting or the run folder is unusable; the message names the flag or the path."""


@dataclass
class SweepSpec:
    dataset: str = "mnist"
    data_dir: str | None = None
    hidden: tuple = space.DEFAULT_HIDDEN
    lr: tuple = space.DEFAULT_LR
    l2: tuple = space.DEFAULT_L2
    epochs: int = 10
    batch_size: int = 256
    seed: int = 0
    val_fraction: float = 0.2
    momentum: float = 0.0
    scheduler: str = "halving"
    reduction_factor: int = 4
    # Epochs at which early stopping compares the trials and keeps the best 1/reduction_factor:
    # whole epochs, or fractions of the first epoch, at which trials then also report. Rungs at
    # or past `epochs` are not used. With "asha", Ray's own geometric rungs from the first of
    # these. Why 0.25, 1, 2, 4: BENCHMARKS.md section 2.
    rungs: tuple = space.DEFAULT_RUNGS
    # "scaled": a report inside the first epoch at fraction f validates on that fraction of the
    # validation set (a fixed subset), not all of it; "full": all of it. Why: BENCHMARKS.md
    # section 2 (the first rung's 175 validation passes were a third of its work).
    partial_val: str = "scaled"
    cpus_per_trial: int = 1
    max_concurrent: int = 0  # 0: as many as the CPUs allow
    order: str = "shuffled"  # "natural" only to measure why the order matters (benchmarks)
    # Report at the fractional rungs even with --scheduler none, so that a full grid records
    # what replay_asha.py needs to replay them (benchmarks; costs a validation pass each).
    measure_rungs: bool = False
    address: str | None = None
    storage: str | None = None
    dataset_files: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Check every setting, grid values included, as the command line does: SweepError
        naming the flag. Run before anything starts, whoever built the spec."""
        if self.dataset not in DATASETS:
            raise SweepError(f"--dataset: unknown {self.dataset!r}; choose {', '.join(DATASETS)}")
        for flag, v in (("--epochs", self.epochs), ("--batch-size", self.batch_size),
                        ("--cpus-per-trial", self.cpus_per_trial),
                        ("--reduction-factor", self.reduction_factor), ("--seed", self.seed),
                        ("--max-concurrent", self.max_concurrent)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise SweepError(f"{flag}: {v!r} is not a whole number")
        for flag, v in (("--epochs", self.epochs), ("--batch-size", self.batch_size),
                        ("--cpus-per-trial", self.cpus_per_trial),
                        ("--reduction-factor", self.reduction_factor)):
            if v < 1:
                raise SweepError(f"{flag}: {v} must be a positive integer")
        for flag, v in (("--val-fraction", self.val_fraction), ("--momentum", self.momentum)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or v != v:
                raise SweepError(f"{flag}: {v!r} is not a number")
        if not 0 <= self.momentum < 1:
            raise SweepError(f"--momentum: {self.momentum} must be in [0, 1)")
        try:  # each grid value as its flag's parser would take it
            for flag, values, parse in (
                    ("--hidden", self.hidden, space.parse_int_list),
                    ("--lr", self.lr, lambda f, t: space.parse_float_list(f, t, positive=True)),
                    ("--l2", self.l2, lambda f, t: space.parse_float_list(f, t, positive=False))):
                if isinstance(values, str) or not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                                                      for v in values):
                    raise SweepError(f"{flag}: {values!r} is not a list of numbers")
                if values and flag == "--hidden" and not all(float(v).is_integer() for v in values):
                    raise SweepError(f"{flag}: {','.join(map(str, values))} must be whole numbers")
                if values:
                    parse(flag, ",".join(map(str, values)))
        except space.SpaceError as e:
            raise SweepError(str(e)) from None
        problem = space.check_rungs(self.rungs)
        if problem:
            raise SweepError(f"--rungs: {','.join(map(str, self.rungs)) or 'empty'}: {problem}")
        if self.reduction_factor < 2:
            raise SweepError(f"--reduction-factor: {self.reduction_factor} must be at least 2")
        if self.max_concurrent < 0:
            raise SweepError(f"--max-concurrent: {self.max_concurrent} must be 0 (no limit) or positive")
        if self.seed < 0:
            raise SweepError(f"--seed: {self.seed} must be non-negative")
        if not 0 < self.val_fraction < 1:
            raise SweepError(f"--val-fraction: {self.val_fraction} must be between 0 and 1")
        if self.order not in ("shuffled", "natural"):
            raise SweepError(f"order: {self.order!r}; choose shuffled or natural")
        if self.partial_val not in PARTIAL_VAL:
            raise SweepError(f"--partial-val: {self.partial_val!r}; choose {', '.join(PARTIAL_VAL)}")
        if self.scheduler not in SCHEDULERS:
            raise SweepError(f"--scheduler: {self.scheduler!r}; choose {', '.join(SCHEDULERS)}")
        if not (self.hidden and self.lr and self.l2):
            raise SweepError("the grid is empty: --hidden, --lr and --l2 each need a value")

    def partial_epochs(self) -> tuple:
        """Fractions of the first epoch at which every trial also reports."""
        if self.scheduler != "none" or self.measure_rungs:
            return space.partial_rungs(self.rungs)
        return ()

    def configs(self) -> list[dict]:
        return space.grid(self.hidden, self.lr, self.l2)

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("hidden", "lr", "l2", "rungs"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_json(cls, d: dict) -> "SweepSpec":
        d = dict(d)
        d.setdefault("partial_val", "full")  # written before the setting: as it ran
        for k in ("hidden", "lr", "l2"):
            d[k] = tuple(d[k])
        if "rungs" in d:
            d["rungs"] = tuple(d["rungs"])
        elif "grace_period" in d:  # written before --rungs: Ray's geometric rungs, as it ran
            d["rungs"] = space.geometric_rungs(int(d["grace_period"]),
                                               int(d.get("reduction_factor", 4)),
                                               int(d.get("epochs", 10)))
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


# ---------------------------------------------------------------------------------------------
# Run folder
# ---------------------------------------------------------------------------------------------
def default_name() -> str:
    return "sweep-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def run_folder(out: str, name: str) -> Path:
    """OUT/NAME, refusing names that are not a plain folder name (no '/', '..', leading dot)."""
    if not NAME_RE.fullmatch(name) or ".." in name:
        raise SweepError(f"--name: {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
                         f"(no '/', no '..', not starting with '.')")
    return Path(out).expanduser().resolve() / name


def absolute_storage(storage: str | None) -> str | None:
    """--storage as Tune must get it: a URI unchanged, a path made absolute (trials chdir)."""
    if storage and "://" not in storage:
        return str(Path(storage).expanduser().resolve())
    return storage


def tune_location(run_dir: Path, storage: str | None) -> tuple[str, str]:
    """(storage_path, experiment name) for Tune: RUN_DIR/tune by default, STORAGE/NAME with
    --storage (a path every node shares, or a URI such as s3://bucket/prefix)."""
    if storage:
        return storage.rstrip("/"), run_dir.name
    return str(run_dir), TUNE_DIR


def check_run_folder(run_dir: Path, resume: bool, storage: str | None = None) -> None:
    """Refuse a new sweep over an existing run (even an empty folder), a resume of something
    that is not one, and a folder another live driver holds."""
    pid = holder(run_dir) if run_dir.is_dir() else None
    if pid:
        raise SweepError(f"{'--resume' if resume else '--name'}: {run_dir} is in use by another "
                         f"driver (PID {pid}); wait for it to end, or stop it")
    if resume:
        if not (run_dir / T.SWEEP_FILE).is_file():
            raise SweepError(f"--resume: {run_dir} holds no sweep to resume ({T.SWEEP_FILE} not found)")
        base, name = tune_location(run_dir, storage)
        if "://" not in base and not (Path(base) / name).is_dir():
            raise SweepError(f"--resume: {Path(base) / name} is missing: the sweep cannot be resumed")
        # Ray Tune unpickles tuner.pkl and its experiment state on a resume: as ssh does with
        # keys, refuse files that someone else could have written
        trusted = [run_dir, run_dir / T.SWEEP_FILE] + ([Path(base) / name] if "://" not in base else [])
        for p in trusted:
            problem = untrusted(p)
            if problem:
                raise SweepError(f"--resume: {p} {problem}; a resume unpickles files from there, "
                                 f"so only your own, unshared folders are resumed")
    elif run_dir.exists() or run_dir.is_symlink():
        raise SweepError(f"--name: {run_dir} already exists; pass --resume to continue it "
                         f"or choose another --name (earlier results are never overwritten)")


def untrusted(path: Path) -> str | None:
    """Why `path` could hold someone else's writing (another owner, writable by group or
    others), or None."""
    st = path.stat()
    if st.st_uid != os.getuid():
        return f"is owned by another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"is writable by group or others (mode {st.st_mode & 0o777:o}; chmod go-w it)"
    return None


def create_run_folder(run_dir: Path) -> None:
    """Create OUT/NAME, exclusively: of two drivers starting the same new sweep, one fails."""
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # --out is a file, or not writable
        raise SweepError(f"--out: cannot write to {run_dir}: {e.strerror or e}") from None
    try:
        run_dir.mkdir()
    except FileExistsError:
        raise SweepError(f"--name: {run_dir} already exists; pass --resume to continue it "
                         f"or choose another --name (earlier results are never overwritten)") from None
    except OSError as e:
        raise SweepError(f"--out: cannot write to {run_dir}: {e.strerror or e}") from None


def take_folders(run_dir: Path, storage_path: str, tune_name: str, resume: bool) -> list:
    """This driver's locks on its run folder and, with a local --storage, on STORAGE/NAME (two
    sweeps whose experiment folders there collide must not share one). Kept for the driver's
    life by whoever holds the SweepOutcome."""
    locks = []
    try:
        locks.append(lock_folder(run_dir))
        if "://" not in storage_path and Path(storage_path) != run_dir:
            experiment = Path(storage_path) / tune_name
            experiment.mkdir(parents=True, exist_ok=True)
            locks.append(lock_folder(experiment))
    except FolderInUse as e:
        for f in locks:
            f.close()
        raise SweepError(f"{'--resume' if resume else '--storage'}: {e}") from None
    return locks


# ---------------------------------------------------------------------------------------------
# Ray
# ---------------------------------------------------------------------------------------------
def cluster_address(address: str | None) -> str | None:
    """The existing cluster to use: `address`, else $RAY_ADDRESS, else None (a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def start_ray(address: str | None, verbose: bool, num_cpus: int | None = None) -> bool:
    """Connect to `address` (or $RAY_ADDRESS), or start a local Ray bound to 127.0.0.1 with no
    dashboard. Returns True when this call started it (so the caller shuts it down)."""
    if ray.is_initialized():
        return False
    address = cluster_address(address)
    kwargs = dict(log_to_driver=verbose, include_dashboard=False,
                  logging_level="INFO" if verbose else "ERROR")
    if address:
        check_address(address)
        # Ship this project's packages with the job (Ray's runtime_env): a node then needs only
        # Python, Ray and what the trainable imports (NumPy, threadpoolctl), not a copy of the
        # project. Under `ray job submit --working-dir`, Ray merges this with the job's own.
        ray.init(address=address, runtime_env={"py_modules": shipped_modules()}, **kwargs)
    else:
        # "local": always a new instance of our own. Without it ray.init() joins whatever
        # cluster the `ray_current_cluster` file in Ray's temporary folder names (one that
        # `ray start` left running), skipping the cluster checks and running there.
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    return True


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
    except socket.timeout:
        raise SweepError(f"--address: {address} did not answer within {timeout_s:.0f} s") from None
    except OSError as e:
        raise SweepError(f"--address: nothing answers at {address} ({e.strerror or e})") from None
    if len(reply) < 4 or reply[3] != 4:  # no HTTP/2 SETTINGS frame: not a gRPC server
        raise SweepError(f"--address: {address} answers, but not as a Ray cluster (its head's "
                         f"GCS port, 6379 by default)")


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
            return importlib.import_module("search.sweep").code_fingerprint(packages), None
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
        (n["NodeManagerAddress"], n["NodeID"], fp, err) for n, (fp, err) in zip(nodes, answers)])
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


def make_scheduler(spec: SweepSpec, n_trials: int, run_dir: Path | None = None):
    """The spec's early stopping: deterministic successive halving (its decisions logged in the
    run folder for a resume), Ray's own ASHA (rungs: the first of --rungs times powers of the
    reduction factor; timing-dependent, see README), or none."""
    if spec.scheduler == "none":
        return FIFOScheduler()
    if spec.scheduler == "asha":
        return ASHAScheduler(time_attr=EPOCH, max_t=spec.epochs, grace_period=min(spec.rungs[0], spec.epochs),
                             reduction_factor=spec.reduction_factor)
    return HalvingScheduler(n_trials, spec.rungs, spec.epochs, spec.reduction_factor,
                            log_path=run_dir / RUNG_LOG if run_dir else None)


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------
@dataclass
class SweepOutcome:
    run_dir: Path
    total: int
    finished: int
    interrupted: bool
    seconds: float
    # Wall seconds of each phase (load, ray_start, setup, fit, ray_shutdown when this call
    # started Ray, tables): where the time that is not training went. Read by bench_sweep.py.
    phases: dict = field(default_factory=dict)
    # The driver's locks on its folders: held while this outcome lives (the post-sweep work runs
    # under them), released when it is dropped or the process ends.
    locks: list = field(default_factory=list, repr=False)


def run_sweep(spec: SweepSpec, run_dir: Path, resume: bool = False, verbose: bool = False,
              stream=None, trainable_fn=train_mlp) -> SweepOutcome:
    """Run (or resume) the sweep into run_dir; returns when every trial has finished or the sweep
    was stopped (Ctrl-C). `trainable_fn` is replaceable for the overhead benchmark."""
    stream = stream or sys.stderr
    t0 = time.monotonic()
    spec.validate()
    spec.storage = absolute_storage(spec.storage)
    check_run_folder(run_dir, resume, spec.storage)
    phases, mark = {}, time.monotonic()

    def phase(name):
        nonlocal mark
        now = time.monotonic()
        phases[name] = now - mark
        mark = now

    # Everything that can fail on bad input fails here, before the run folder or Ray exist.
    data = load_dataset(spec.dataset, spec.data_dir, spec.val_fraction, spec.seed)
    if len(data.X_val) < N_CLASSES:
        raise SweepError(f"--val-fraction: {spec.val_fraction} holds out {len(data.X_val)} of "
                         f"{len(data.X_train) + len(data.X_val)} training images, fewer than the "
                         f"{N_CLASSES} classes: validation accuracy would mean nothing")
    if spec.batch_size > len(data.X_train):
        raise SweepError(f"--batch-size: {spec.batch_size} is larger than the training set "
                         f"({len(data.X_train)} images)")
    if resume and spec.dataset_files:
        changed = [r for r, f in data.files.items()
                   if spec.dataset_files.get(r, {}).get("sha256") != f["sha256"]]
        if changed:
            raise SweepError(f"--resume: the dataset differs from the one the sweep started with "
                             f"({', '.join(data.files[r]['path'] for r in changed)})")
    spec.data_dir = str(resolve_data_dir(spec.dataset, spec.data_dir))
    spec.dataset_files = data.files
    configs = space.shuffled(spec.configs(), spec.seed) if spec.order == "shuffled" else spec.configs()
    fixed = {"epochs": spec.epochs, "batch_size": spec.batch_size, "seed": spec.seed,
             "momentum": spec.momentum, CPUS_PER_TRIAL: spec.cpus_per_trial,
             PARTIAL_EPOCHS: ",".join(map(str, spec.partial_epochs())),
             SCALED_PARTIAL_VAL: spec.partial_val == "scaled"}
    storage_path, tune_name = tune_location(run_dir, spec.storage)

    if spec.max_concurrent and spec.scheduler == "halving" and (cluster_address(spec.address) or ray.is_initialized()):
        raise SweepError("--max-concurrent: with --scheduler halving it applies to a Ray this sweep "
                         "starts itself; on an existing cluster the trials use the CPUs it offers")

    phase("load")
    started = start_ray(spec.address, verbose, local_cpus(spec))
    phase("ray_start")
    try:
        # Needs the cluster's nodes, so after Ray's start, but still before anything is written.
        check_storage(storage_path, cluster_node_ips(), "--storage" if spec.storage else "--out")
        if cluster_address(spec.address):  # other machines may lack this project
            nodes, sources = check_cluster_code("--address")
            print(f"cluster: {nodes} node(s) with CPUs, each running this project's sources "
                  f"{sources}", file=stream, flush=True)
        if not resume:
            create_run_folder(run_dir)
        try:
            locks = take_folders(run_dir, storage_path, tune_name, resume)
        except SweepError:
            if not resume:  # the folder this call just made, holding only the lock file
                (run_dir / LOCK_FILE).unlink(missing_ok=True)
                run_dir.rmdir()
            raise
        if not resume:
            T.write_json_atomic({**spec.to_json(), "created": _dt.datetime.now().isoformat(timespec="seconds")},
                                run_dir / T.SWEEP_FILE)
        scheduler = make_scheduler(spec, len(configs), run_dir)
        recorder = RunRecorder(run_dir, spec.epochs)
        progress = Progress(recorder, len(configs), stream=stream)
        slots = int(ray.cluster_resources().get("CPU", 0) // spec.cpus_per_trial)
        if spec.max_concurrent and not started:
            slots = min(slots, spec.max_concurrent)
        print(f"sweep {run_dir}: {len(configs)} trials, ≤{spec.epochs} epochs each, "
              f"scheduler {spec.scheduler}, {len(data.X_train)} training images, "
              f"{slots} trial{'s' if slots != 1 else ''} at a time"
              + (f" (resuming: {len(recorder.rows)} done)" if resume else ""), file=stream, flush=True)

        trainable = tune.with_parameters(
            tune.with_resources(trainable_fn, {"cpu": spec.cpus_per_trial}),
            X_train=data.X_train, y_train=data.y_train, X_val=data.X_val, y_val=data.y_val,
            finished=recorder.finished)
        tune_path = f"{storage_path}/{tune_name}"
        run_config = tune.RunConfig(
            name=tune_name, storage_path=storage_path,
            # every checkpoint kept while a trial runs; its weights dropped when it ends
            # (callbacks.drop_checkpoint_weights says why)
            failure_config=tune.FailureConfig(max_failures=3),
            callbacks=[recorder, progress], verbose=2 if verbose else 0)
        if resume:
            tuner = tune.Tuner.restore(tune_path, trainable=trainable, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space={space.HIDDEN_SIZE: tune.choice(list(spec.hidden)),
                             space.LEARNING_RATE: tune.choice(list(spec.lr)),
                             space.L2: tune.choice(list(spec.l2)), **fixed},
                tune_config=tune.TuneConfig(
                    metric=VAL_ACCURACY, mode="max", scheduler=scheduler,
                    search_alg=BasicVariantGenerator(points_to_evaluate=[{**c, **fixed} for c in configs],
                                                     max_concurrent=searcher_limit(spec, started)),
                    num_samples=len(configs), reuse_actors=True),
                run_config=run_config)
        tune_logger = logging.getLogger("ray.tune")
        level = tune_logger.level
        if not verbose:  # e.g. "failed to fetch metrics" for the per-trial logs we turned off
            tune_logger.setLevel(logging.ERROR)
        phase("setup")
        try:
            tuner.fit()
        finally:
            tune_logger.setLevel(level)
            phase("fit")
    finally:
        if started:
            ray.shutdown()
            phase("ray_shutdown")
    recorder.write()
    phase("tables")
    finished = len(recorder.rows)
    return SweepOutcome(run_dir, len(configs), finished, finished < len(configs),
                        time.monotonic() - t0, phases, locks)
