"""A sweep's settings (SweepSpec): one field per setting declared in settings.py, every value
checked up front by its declaration (naming its flag), written to and read from sweep.json.

Leaves out running the sweep (search/sweep.py) and parsing the command line (run_search.py).
tests/test_settings.py holds the fields to the declarations: same names, order and defaults.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import SweepError
from . import settings
from .halving import partial_rungs

_DEFAULT = settings.DEFAULTS


# How many failures of a trial Ray Tune retries (FailureConfig), each from its last checkpoint:
# twice the deaths a trial is promised to survive (3), since Tune counts one death twice when the
# dead worker had two tasks in flight (saving the checkpoint of a pause, and the pause itself).
MAX_FAILURES = 6


@dataclass
class SweepSpec:
    """A sweep's settings, defaults and all (each field is settings.BY_NAME[name])."""
    dataset: str = _DEFAULT["dataset"]
    data_dir: str | None = _DEFAULT["data_dir"]
    data: str | None = _DEFAULT["data"]
    label: str | None = _DEFAULT["label"]
    features: tuple = _DEFAULT["features"]
    drop: tuple = _DEFAULT["drop"]
    test_fraction: float = _DEFAULT["test_fraction"]
    scale: str = _DEFAULT["scale"]
    hidden: tuple = _DEFAULT["hidden"]
    lr: tuple = _DEFAULT["lr"]
    l2: tuple = _DEFAULT["l2"]
    epochs: int = _DEFAULT["epochs"]
    batch_size: int = _DEFAULT["batch_size"]
    seed: int = _DEFAULT["seed"]
    val_fraction: float = _DEFAULT["val_fraction"]
    momentum: float = _DEFAULT["momentum"]
    scheduler: str = _DEFAULT["scheduler"]
    reduction_factor: int = _DEFAULT["reduction_factor"]
    rungs: tuple = _DEFAULT["rungs"]
    partial_val: str = _DEFAULT["partial_val"]
    extend_edges: int = _DEFAULT["extend_edges"]
    max_hidden: int = _DEFAULT["max_hidden"]
    cpus_per_trial: int = _DEFAULT["cpus_per_trial"]
    max_concurrent: int = _DEFAULT["max_concurrent"]
    address: str | None = _DEFAULT["address"]
    storage: str | None = _DEFAULT["storage"]
    # Not a flag: report at the rungs inside the first epoch even with --scheduler none, so that a
    # full grid records what benchmarks/replay_asha.py replays (a validation pass and a checkpoint
    # each).
    measure_rungs: bool = False
    # Set by the sweep: each data file's path and SHA-256, so that a resume or a retraining can
    # tell the data changed.
    dataset_files: dict = field(default_factory=dict)
    # Set by the sweep: what its data is (Dataset.facts: source, rows per split, features,
    # classes and their rows), for the report
    data_facts: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Check every setting, grid values included, as the command line does: SweepError
        naming the flag. Run before anything starts, whoever built the spec."""
        wrong = settings.problems({s.name: getattr(self, s.name) for s in settings.SETTINGS})
        if wrong:
            raise SweepError(wrong[0])
        if self.dataset == settings.FROM_FILE and not self.data:
            raise SweepError(f"--dataset {settings.FROM_FILE}: name the file with --data PATH")
        if self.data and self.dataset != settings.FROM_FILE:
            raise SweepError(f"--data: names the data; --dataset {self.dataset} names other data: give one of them")
        if (self.label or self.features or self.drop) and self.dataset != settings.FROM_FILE:
            raise SweepError("--label, --features and --drop choose a table's columns: give them with --data TABLE")
        clash = set(self.features) & set(self.drop) or ({self.label} & set(self.features))
        if clash:
            raise SweepError(f"--features, --drop and --label: {', '.join(sorted(clash))} named twice")

    def report_fractions(self) -> tuple:
        """Fractions of the first epoch at which every trial also reports."""
        if self.scheduler != "none" or self.measure_rungs:
            return partial_rungs(self.rungs)
        return ()

    def configs(self) -> list[dict]:
        return settings.grid(self.__dict__)

    def train_values(self) -> dict:
        """The training config's fields every trial shares (settings.train_values)."""
        return settings.train_values(self.__dict__)

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> SweepSpec:
        """From sweep.json (settings.completed)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in settings.completed(d).items() if k in names})


def changed_files(recorded: dict, files: dict) -> list[str]:
    """The paths among `files` (the dataset's files by role: path and SHA-256) whose SHA-256 is
    not the one sweep.json records for that role (`recorded`, its dataset_files)."""
    return [f["path"] for role, f in files.items()
            if role in recorded and (recorded[role] or {}).get("sha256") != f["sha256"]]
