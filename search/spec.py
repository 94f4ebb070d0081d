"""A sweep's settings (SweepSpec): every value checked up front, naming its flag, and written to
and read from sweep.json. No Ray.

Leaves out running the sweep (sweep.py) and parsing the command line (run_search.py).
"""
from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field

from mlp_core.data import DATASETS

from . import space
from .errors import SweepError

SCHEDULERS = ("halving", "asha", "none")
PARTIAL_VAL = ("scaled", "full")


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
    # The one setting kept for the benchmarks, and not a flag: report at the rungs inside the
    # first epoch even with --scheduler none, so that a full grid records what
    # benchmarks/replay_asha.py replays (a validation pass and a checkpoint each).
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
