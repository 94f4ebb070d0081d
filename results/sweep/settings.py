"""Every setting of a sweep, declared once: its name (SweepSpec's field, sweep.json's key, the
Python API's keyword), its command-line flag, type, default, constraint and help, whether it is
a grid axis (and then its column in the tables), and the training config field it sets.

Derived from here: the `run` command's flags (run_search.py), SweepSpec and its checks
(spec.py), the API's keywords (search/api.py), sweep.json's shape (schema.py) and how it reads
back (`completed`), the tables' hyperparameter columns (table.py), and the TrainConfig of
a trial and of a retraining (`train_values`). No Ray and no pandas, so the command line's help
loads it cheaply.
"""
from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from mlp_core.data import DATASETS
from mlp_core.tabular import BUNDLED, LABEL_DEFAULT, SCALINGS
from mlp_core.train import RULES

from . import space

# sweep.json's kinds of value (results/folder/schema.py checks a file against them)
NUMBER, WHOLE, TEXT, NUMBERS, TEXTS = "a number", "a whole number", "text", "a list of numbers", "a list of text"
# Where a sweep's data comes from (--dataset): MNIST's or Fashion-MNIST's IDX files, one of
# scikit-learn's bundled sets, or FROM_FILE, the file --data names (or the arrays given to api.run)
FROM_FILE = "file"
SOURCES = (*DATASETS, *BUNDLED, FROM_FILE)


@dataclass(frozen=True)
class Kind:
    """How a setting's value is read from the command line (`parse`: text to value, ValueError
    with the reason) and checked from anywhere (`problem`: the reason a value is refused, or
    None), and its type in sweep.json (`schema`)."""
    parse: Callable[[str], Any]
    problem: Callable[[Any], str | None]
    schema: str
    choices: tuple = ()
    item: type = float  # a list's items as the tables and trials hold them


def _real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def whole(ok: Callable[[int], bool], requirement: str) -> Kind:
    def problem(v, shown=None):
        if not _real(v) or not isinstance(v, numbers.Integral):
            return f"{v!r} is not a whole number"
        return None if ok(v) else f"{shown or v} {requirement}"
    return Kind(_parsed(int, "a whole number", problem), problem, WHOLE)


def real(ok: Callable[[float], bool], requirement: str) -> Kind:
    def problem(v, shown=None):
        if not _real(v) or v != v:
            return f"{v!r} is not a number"
        return None if math.isfinite(v) and ok(v) else f"{shown or v} {requirement}"
    return Kind(_parsed(float, "a number", problem), problem, NUMBER)


def trained(field: str) -> Kind:
    """A setting that is a training value: checked by mlp_core.train's rule for it, the one place
    that rule lives."""
    kind, ok, requirement = RULES[field]
    return (whole if kind is int else real)(ok, requirement)


def _parsed(convert, what: str, problem):
    """A parser of typed text: `convert`, then `problem`, which quotes the value as typed."""
    def parse(text: str):
        try:
            v = convert(text)
        except ValueError:
            raise ValueError(f"{text!r} is not {what}") from None
        why = problem(v, text)
        if why:
            raise ValueError(why)
        return v
    return parse


def choice(*options: str) -> Kind:
    def problem(v):
        return None if v in options else f"{v!r}; choose {', '.join(options)}"
    return Kind(str, problem, TEXT, options)


def optional_text() -> Kind:
    return Kind(str, lambda v: None if v is None or isinstance(v, str) else f"{v!r} is not text", TEXT)


def names() -> Kind:
    """A comma-separated list of a table's column names (empty: none)."""
    def problem(v):
        ok = isinstance(v, (list, tuple)) and all(isinstance(n, str) and n and "," not in n for n in v)
        return None if ok else f"{v!r} is not a list of column names"

    def parse(text: str) -> tuple:
        return tuple(n.strip() for n in text.split(",") if n.strip())
    return Kind(parse, problem, TEXTS, item=str)


def number_list(parse_text: Callable[[str], tuple], integers: bool = False, noun: str = "value") -> Kind:
    """A comma-separated list (the grid's values, the rungs): the API's lists are checked by
    the same parser as the command line's text."""
    def problem(values):
        if isinstance(values, str) or not isinstance(values, (list, tuple)) or not all(map(_real, values)):
            return f"{values!r} is not a list of numbers"
        if not values:
            return f"empty: give at least one {noun}"
        if integers and not all(float(v).is_integer() for v in values):
            return f"{','.join(map(str, values))} must be whole numbers"
        try:
            parse_text(",".join(map(str, values)))
        except space.SpaceError as e:
            return str(e).lstrip(": ")
        return None

    def parse(text):
        try:
            return parse_text(text)
        except space.SpaceError as e:
            raise ValueError(str(e).lstrip(": ")) from None
    return Kind(parse, problem, NUMBERS, item=int if integers else float)


@dataclass(frozen=True)
class Setting:
    """One setting: `name` is SweepSpec's field, sweep.json's key and the API's keyword; its flag
    is the name with dashes."""
    name: str
    default: Any
    kind: Kind
    help: str
    # the default as the help shows it, when it is not the value itself (None: found elsewhere)
    default_shown: str | None = None
    column: str | None = None  # a grid axis: its column in the tables (and its TrainConfig field)
    train: str | None = None  # the TrainConfig field it sets, the same for every trial
    placement: bool = False  # where and how the sweep runs: a resume may change it

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def problem(self, value) -> str | None:
        return self.kind.problem(value)

    def help_text(self) -> str:
        shown = self.default_shown or shown_value(self.default)
        return f"{self.help} (default: {shown})" if self.help else f"default: {shown}"


def shown_value(v) -> str:
    """A value as its flag is written: 1,2,4 rather than (1, 2, 4)."""
    return ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)


SETTINGS = (
    Setting("dataset", "mnist", choice(*SOURCES),
            f"MNIST's or Fashion-MNIST's IDX files, one of scikit-learn's bundled sets, or {FROM_FILE} "
            "(set by --data)"),
    Setting("data_dir", None, optional_text(), "folder holding the four IDX files, downloaded there "
            "if missing)", "$MLP_SWEEP_CACHE/<dataset> or ~/.cache/mlp-sweep/<dataset>", placement=True),
    Setting("data", None, optional_text(), "your data: an .npz (X, y, optionally X_test, y_test), a "
            ".csv, .tsv or .parquet table (numeric features and a label column), or a folder of "
            "IDX files (as --data-dir)", "none: --dataset", placement=True),
    Setting("label", None, optional_text(), "a table's label column",
            f"{LABEL_DEFAULT!r} if there is one, else the last column"),
    Setting("features", (), names(), "a table's feature columns to keep, comma-separated",
            "every column but the label"),
    Setting("drop", (), names(), "a table's columns to leave out, comma-separated", "none"),
    Setting("test_fraction", 0.2, real(lambda v: 0 < v < 1, "must be between 0 and 1"),
            "share of the data held out as the test set, stratified, where the data gives none"),
    Setting("scale", "auto", choice(*SCALINGS),
            "the inputs: standard, standardised by the training part's mean and deviation (kept "
            "in the model); pixels, / 255; none, as given; auto, pixels for uint8 images, else "
            "standard"),
    Setting("hidden", (64, 128, 256, 512, 1024),
            number_list(partial(space.parse_int_list, ""), integers=True),
            "hidden sizes, comma-separated", column="hidden_size"),
    Setting("lr", (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1),
            number_list(partial(space.parse_float_list, "", positive=True)),
            "learning rates", column="learning_rate"),
    Setting("l2", (0.001, 0.005, 0.01, 0.05, 0.1),
            number_list(partial(space.parse_float_list, "", positive=False)), "L2 strengths", column="l2"),
    Setting("epochs", 10, trained("epochs"), "most epochs a trial runs",
            train="epochs"),
    Setting("batch_size", 256, trained("batch_size"), "", train="batch_size"),
    Setting("seed", 0, trained("seed"), "seeds the split, the order and every trial",
            train="seed"),
    Setting("val_fraction", 0.2, real(lambda v: 0 < v < 1, "must be between 0 and 1"),
            "share of the training set held out"),
    Setting("momentum", 0.0, trained("momentum"), "SGD momentum",
            "0, plain SGD", train="momentum"),
    Setting("scheduler", "halving", choice("halving", "asha", "none"),
            "halving: stop weak trials early, the same decisions at any scale; asha: "
            "Ray's asynchronous halving (timing-dependent); none: every trial runs all epochs"),
    Setting("reduction_factor", 4, whole(lambda v: v >= 2, "must be at least 2"),
            "early stopping keeps 1 in this many trials at each rung"),
    # Epochs at which early stopping compares the trials and keeps the best 1/reduction_factor:
    # whole epochs, or fractions of the first epoch, at which trials then also report. Rungs at
    # or past `epochs` are not used. With "asha", Ray's own geometric rungs from the first of
    # these. Why 0.25, 1, 2, 4: BENCHMARKS.md, "The default sweep on full Fashion-MNIST".
    Setting("rungs", (0.25, 1, 2, 4), number_list(partial(space.parse_rungs, ""), noun="rung"),
            "epochs at which early stopping compares trials, comma-separated: whole epochs or "
            "fractions of the first"),
    # Why a fixed subset: BENCHMARKS.md, "The default sweep on full Fashion-MNIST" (the first
    # rung's validation passes were much of its work).
    Setting("partial_val", "scaled", choice("scaled", "full"),
            "validation at a rung inside the first epoch: scaled, on that fraction of the "
            "validation set, a fixed subset; full, on all of it"),
    # Following the grid's edge (results/sweep/edges.py): rounds after the grid's sweep, each adding the
    # value beyond every edge the best sits on; hidden sizes added no larger than max_hidden.
    Setting("extend_edges", 0, whole(lambda v: v >= 0, "must be 0 (off) or a positive number of rounds"),
            "after the grid, rounds that extend each axis whose best value is at the grid's edge",
            "0, off"),
    Setting("max_hidden", 4096, whole(lambda v: v >= 1, "must be a positive integer"),
            "largest hidden size --extend-edges may add"),
    Setting("cpus_per_trial", 1, whole(lambda v: v >= 1, "must be a positive integer"),
            "CPUs (and BLAS threads) per trial", placement=True),
    Setting("max_concurrent", 0, whole(lambda v: v >= 0, "must be 0 (no limit) or positive"), "most trials at once",
            "0, as many as the CPUs allow", placement=True),
    Setting("address", None, optional_text(), "an existing Ray cluster",
            "$RAY_ADDRESS, else start a local one", placement=True),
    Setting("storage", None, optional_text(), "where Ray Tune keeps the experiment state and "
            "checkpoints: a path every node shares (NFS) or a URI (s3://, gs://); needed on a "
            "multi-machine cluster", "RUN_DIR/tune", placement=True),
)
BY_NAME = {s.name: s for s in SETTINGS}
DEFAULTS = {s.name: s.default for s in SETTINGS}
# What a sweep is: a resume must match these.
SWEEP = tuple(s.name for s in SETTINGS if not s.placement)
PLACEMENT = tuple(s.name for s in SETTINGS if s.placement)
AXES = tuple(s for s in SETTINGS if s.column)
HYPERPARAMETERS = tuple(s.column for s in AXES)  # the tables' columns, a trial's configuration
SWEEP_REQUIRED = ("dataset", "hidden", "lr", "l2", "epochs")  # the least a sweep.json must name


def problems(values: dict) -> list[str]:
    """Every refused value among `values` (a setting's name to its value), as "--flag: why"."""
    found = ((BY_NAME[k], v) for k, v in values.items() if k in BY_NAME)
    return [f"{s.flag}: {why}" for s, v in found for why in [s.problem(v)] if why]


def completed(sweep: dict) -> dict:
    """A sweep.json's settings as a SweepSpec takes them: lists as tuples, and a setting it does
    not name (added by a later release, whose default is then what the sweep ran with) or leaves
    empty (a placement: address, storage) at its default."""
    d = dict(sweep)
    for s in SETTINGS:
        if d.get(s.name) is None:
            d[s.name] = s.default
        if isinstance(d.get(s.name), list):
            d[s.name] = tuple(d[s.name])
    return d


def train_values(sweep: dict) -> dict:
    """The training config's fields that every trial of `sweep` (a SweepSpec's or a completed
    sweep.json's settings) shares; a trial's own are its grid point."""
    return {s.train: sweep[s.name] for s in SETTINGS if s.train}


def grid_key(config: dict) -> tuple:
    """A trial's place in the grid, for breaking ties: (hidden size, learning rate, L2)."""
    return tuple(config[k] for k in HYPERPARAMETERS)


def grid(values: dict) -> list[dict]:
    """Every combination of the grid axes' values (`values`: a setting's name to its list, e.g. a
    SweepSpec's fields or DEFAULTS), in natural (nested) order, as {column: value}: the trials'
    configs and the tables' hyperparameter columns."""
    axes = [[s.kind.item(v) for v in values[s.name]] for s in AXES]
    return [dict(zip(HYPERPARAMETERS, point, strict=True)) for point in itertools.product(*axes)]
