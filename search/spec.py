"""A sweep's settings (SweepSpec): one field per setting declared in settings.py, every value
checked up front by its declaration (naming its flag), written to and read from sweep.json.
No Ray.

Leaves out running the sweep (sweep.py) and parsing the command line (run_search.py).
"""
from __future__ import annotations

from dataclasses import asdict, field, make_dataclass

from . import settings, space
from .errors import SweepError


class _SweepSpec:
    def validate(self) -> None:
        """Check every setting, grid values included, as the command line does: SweepError
        naming the flag. Run before anything starts, whoever built the spec."""
        wrong = settings.problems({s.name: getattr(self, s.name) for s in settings.SETTINGS})
        if wrong:
            raise SweepError(wrong[0])

    def partial_epochs(self) -> tuple:
        """Fractions of the first epoch at which every trial also reports."""
        if self.scheduler != "none" or self.measure_rungs:
            return space.partial_rungs(self.rungs)
        return ()

    def configs(self) -> list[dict]:
        return settings.grid(self.__dict__)

    def train_values(self) -> dict:
        """The training config's fields every trial shares (settings.train_values)."""
        return settings.train_values(self.__dict__)

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> "SweepSpec":
        """From sweep.json, settings it predates filled in as it ran (settings.completed)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in settings.completed(d).items() if k in names})


_TYPES = {settings.WHOLE: int, settings.NUMBER: float, settings.TEXT: "str | None",
          settings.NUMBERS: tuple}
SweepSpec = make_dataclass(
    "SweepSpec",
    [(s.name, _TYPES[s.kind.schema], field(default=s.default)) for s in settings.SETTINGS] + [
        # The one field kept for the benchmarks, and not a flag: report at the rungs inside the
        # first epoch even with --scheduler none, so that a full grid records what
        # benchmarks/replay_asha.py replays (a validation pass and a checkpoint each).
        ("measure_rungs", bool, field(default=False)),
        # Set by the sweep: each data file's path and SHA-256, so a resume or a retraining can
        # tell the data changed.
        ("dataset_files", dict, field(default_factory=dict)),
    ],
    bases=(_SweepSpec,))
SweepSpec.__module__ = __name__
SweepSpec.__doc__ = "A sweep's settings: a field per settings.SETTINGS, defaults and all."
