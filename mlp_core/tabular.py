"""A user's own labelled data, made into what a sweep trains on: an .npz of arrays, a CSV, TSV or
Parquet table, or one of scikit-learn's bundled real datasets, read and checked (one line naming
the file and the column or row), labels of any kind turned into classes 0..C-1 in a fixed order
with their names kept, seeded stratified splits, and the features' scaling the model keeps.

Leaves out MNIST's IDX files (data.py) and the model. NumPy only, but for pandas (a table's
parsing), pyarrow (Parquet) and scikit-learn (the bundled sets), each imported only when asked
for: a trial never imports this module.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import DataError, Dataset, sha256_file, split_indices

LABEL_DEFAULT = "label"  # a table's label column when --label is not given (else its last column)
# scikit-learn's bundled real datasets (no download): --dataset NAME -> its loader's name
BUNDLED = {"digits": "load_digits", "breast-cancer": "load_breast_cancer", "wine": "load_wine",
           "iris": "load_iris"}
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")
# How a model's inputs are scaled (--scale): "auto" is "pixels" for uint8 images (as MNIST's
# always were), else "standard"
SCALINGS = ("auto", "standard", "pixels", "none")


class BadData(DataError):
    """A user's data file or arrays that cannot be swept as they are: a usage error (exit 2)."""


@dataclass
class Labelled:
    """Data as read: features (N, D) of a numeric dtype, labels (N,) of any kind, an optional
    given test set, the features' names, and where it came from."""
    X: np.ndarray
    labels: np.ndarray
    source: str  # how it is named in messages, the report and model.json
    X_test: np.ndarray | None = None
    labels_test: np.ndarray | None = None
    feature_names: list[str] = field(default_factory=list)
    label_names: tuple[str, ...] | None = None  # for integer labels 0..C-1 that have names (bundled sets)
    files: dict = field(default_factory=dict)  # role -> {"path", "sha256"}


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
def read_source(path: str | os.PathLike, label: str | None = None, features: tuple = (),
                drop: tuple = ()) -> Labelled:
    """An .npz (arrays X, y, optionally X_test, y_test) or a table (.csv, .tsv, .parquet)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise BadData(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        if label or features or drop:
            raise BadData(f"{path}: --label, --features and --drop choose a table's columns; an .npz "
                            f"names its arrays X and y")
        data = read_npz(path)
    elif suffix in TABLE_SUFFIXES:
        data = read_table(path, label, features, drop)
    else:
        raise BadData(f"{path}: not a data file this tool reads (.npz, {', '.join(TABLE_SUFFIXES)}, "
                        f"or a folder of IDX files)")
    data.files = {"data": {"path": str(path), "sha256": sha256_file(path)}}
    return data


def read_npz(path: Path) -> Labelled:
    """X (N, D) or images (N, H, W), y (N,); X_test and y_test together or not at all. Never
    unpickles: an array of Python objects is refused."""
    try:
        with zipfile.ZipFile(path) as z:
            names = {Path(n).stem for n in z.namelist()}
    except (zipfile.BadZipFile, OSError) as e:
        raise BadData(f"{path}: not a readable .npz file ({e})") from None
    missing = [k for k in ("X", "y") if k not in names]
    if missing:
        raise BadData(f"{path}: no array {' or '.join(missing)}; an .npz of data holds X (N, D) and y (N,), "
                        f"optionally X_test and y_test (it holds {', '.join(sorted(names)) or 'nothing'})")
    if ("X_test" in names) != ("y_test" in names):
        raise BadData(f"{path}: X_test and y_test go together; it holds only one of them")
    arrays = {}
    with np.load(path, allow_pickle=False) as npz:
        for key in ("X", "y", "X_test", "y_test"):
            if key not in names:
                continue
            try:
                arrays[key] = npz[key]
            except ValueError:
                raise BadData(f"{path}: array {key} holds Python objects: refused (never unpickled); "
                                f"save numbers or text labels (dtype str) instead") from None
    for key in ("X", "X_test"):
        if key in arrays:
            arrays[key] = flat_features(arrays[key], f"{path}: {key}")
    return Labelled(arrays["X"], arrays["y"], str(path), arrays.get("X_test"), arrays.get("y_test"),
                    [f"x{j}" for j in range(arrays["X"].shape[1])])


def flat_features(X: np.ndarray, name: str) -> np.ndarray:
    """Features as (N, D): images (N, H, W) flattened row-major; numbers only."""
    if X.ndim == 3:
        X = X.reshape(len(X), -1)
    if X.ndim != 2 or X.shape[1] < 1:
        raise BadData(f"{name}: shape {X.shape}; features must be (N, D), or images (N, H, W)")
    if X.dtype.kind not in "uif":
        raise BadData(f"{name}: dtype {X.dtype}; features must be numbers")
    return X


def read_table(path: Path, label: str | None, features: tuple, drop: tuple) -> Labelled:
    """A table's numeric feature columns (as float32) and its label column (of any kind), parsed
    by pyarrow (which Ray Tune brings) batch by batch straight into one preallocated float32
    array: the driver holds the features about once (BENCHMARKS.md, "Your own data")."""
    columns = _table_columns(path)
    label = label or (LABEL_DEFAULT if LABEL_DEFAULT in columns else columns[-1])
    unknown = [c for c in (label, *features, *drop) if c not in columns]
    if unknown:
        raise BadData(f"{path}: no column {', '.join(map(repr, unknown))}; its columns are "
                      f"{', '.join(columns[:20])}{', ...' if len(columns) > 20 else ''}")
    names = [c for c in (features or columns) if c != label and c not in drop]
    if not names:
        raise BadData(f"{path}: no feature columns left beside the label column {label!r}")
    rows, batches = _batches(path, names, label)
    X = np.empty((rows, len(names)), np.float32)
    labels, at = [], 0
    for batch in batches:
        n = batch.num_rows
        for j, c in enumerate(names):
            X[at:at + n, j] = batch.column(c).to_numpy(zero_copy_only=False)  # (an empty cell: NaN)
        column = batch.column(label)
        if column.null_count:
            first = at + int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise BadData(f"{path}: column {label!r}, row {first + 1} (line {first + 2}): no label")
        values = column.to_numpy(zero_copy_only=False)
        labels.append(values.astype(str) if values.dtype == object else values)
        at += n
    X = X[:at] if at < rows else X  # (rows counted by lines: a quoted line break counts one more)
    return Labelled(X, np.concatenate(labels) if labels else np.empty(0), str(path), feature_names=names)


def _table_columns(path: Path) -> list[str]:
    import pyarrow as pa
    try:
        if path.suffix.lower() == ".parquet":
            return [str(c) for c in _parquet(path).schema_arrow.names]
        return [str(c) for c in _pandas().read_csv(path, sep=_sep(path), nrows=0).columns]
    except (ValueError, OSError, UnicodeDecodeError, pa.ArrowException) as e:
        raise BadData(f"{path}: not a readable table ({str(e).splitlines()[0]})") from None


def _batches(path: Path, names: list[str], label: str):
    """(at most how many rows, an iterator of pyarrow record batches of these columns: features
    as float32, the label as it is, a CSV's as text); a cell that is no number is named by its
    column and row."""
    import pyarrow as pa
    if path.suffix.lower() == ".parquet":
        pf = _parquet(path)
        schema = pf.schema_arrow
        for c in names:
            kind = schema.field(c).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
                _not_numeric(path, pf.read(columns=[c]).column(c).to_pandas(), c)
        target = pa.schema([*(pa.field(c, pa.float32()) for c in names), schema.field(label)])
        return pf.metadata.num_rows, (b.select([*names, label]).cast(target)
                                      for b in pf.iter_batches(columns=[*names, label]))
    return _count_lines(path), _csv_batches(path, names, label)


def _csv_batches(path: Path, names: list[str], label: str):
    import pyarrow as pa
    from pyarrow import csv
    try:
        reader = csv.open_csv(path, parse_options=csv.ParseOptions(delimiter=_sep(path)),
                              convert_options=csv.ConvertOptions(
                                  include_columns=[*names, label],
                                  # only an empty cell is missing: a class may be called "NA"
                                  null_values=[""], strings_can_be_null=True,
                                  column_types={**{c: pa.float32() for c in names}, label: pa.string()}))
        yield from reader
    except pa.ArrowInvalid as e:  # a feature cell that is not a number: found again, to name it
        pd = _pandas()
        for c in names:
            _not_numeric(path, pd.read_csv(path, sep=_sep(path), usecols=[c], dtype=object,
                                           keep_default_na=False, na_values=[""])[c], c)
        raise BadData(f"{path}: not a readable table ({str(e).splitlines()[0]})") from None


def _count_lines(path: Path) -> int:
    """The rows a CSV can hold at most: its line breaks (a last line without one counts too)."""
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            count += block.count(b"\n")
            last = block[-1:]
    return max(count - (last == b"\n"), 0)  # less the header line


def _not_numeric(path: Path, column, name: str) -> None:
    pd = _pandas()
    as_numbers = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero(as_numbers.isna().to_numpy() & column.notna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise BadData(f"{path}: column {name!r}, row {i + 1} (line {i + 2}): {column.iloc[i]!r} is not a "
                        f"number ({bad.size} such cells); feature columns must be numeric: leave it out "
                        f"with --drop {name}, or make it the label with --label {name}")


def _sep(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _pandas():
    import pandas as pd
    return pd


def _parquet(path: Path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise BadData(f"{path}: reading Parquet needs pyarrow (pip install -e '.[parquet]')") from None
    return pq.ParquetFile(path)


def bundled(name: str) -> Labelled:
    """One of scikit-learn's bundled real datasets (no download), its classes' names kept."""
    try:
        import sklearn
        from sklearn import datasets
    except ImportError:
        raise BadData(f"--dataset {name}: scikit-learn's bundled datasets need scikit-learn "
                        f"(pip install -e '.[datasets]')") from None
    loaded = getattr(datasets, BUNDLED[name])()
    X = np.asarray(loaded.data)
    names = [str(n) for n in getattr(loaded, "feature_names", [])] or [f"x{j}" for j in range(X.shape[1])]
    return Labelled(X, np.asarray(loaded.target), f"scikit-learn {sklearn.__version__}: {BUNDLED[name]}()",
                    feature_names=names, label_names=tuple(str(n) for n in loaded.target_names))


# ---------------------------------------------------------------------------------------------
# Checks and classes
# ---------------------------------------------------------------------------------------------
def check_values(data: Labelled) -> None:
    """Rows that agree, finite features: one line naming the first bad row and column."""
    for X, labels, part in ((data.X, data.labels, ""), (data.X_test, data.labels_test, " test")):
        if X is None:
            continue
        if labels.ndim != 1:
            raise BadData(f"{data.source}: the{part} labels have shape {labels.shape}; give one label per row")
        if len(X) != len(labels):
            raise BadData(f"{data.source}: {len(X)}{part} rows of features but {len(labels)} labels")
        if X.dtype.kind == "f":
            bad = ~np.isfinite(X)
            if bad.any():
                i, j = (int(v[0]) for v in np.nonzero(bad))
                raise BadData(f"{data.source}: {int(bad.sum())} missing or infinite{part} values, the "
                                f"first at row {i + 1}, column {_column(data, j)!r}: fill them in or "
                                f"drop those rows")
    if data.X_test is not None and data.X_test.shape[1] != data.X.shape[1]:
        raise BadData(f"{data.source}: X_test has {data.X_test.shape[1]} features, X has {data.X.shape[1]}")


def _column(data: Labelled, j: int) -> str:
    return data.feature_names[j] if j < len(data.feature_names) else f"x{j}"


def classes_of(data: Labelled) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Labels as classes 0..C-1 in a fixed order (numbers ascending, text in code-point order),
    with each class's name; a test label the training data lacks is refused."""
    labels = data.labels
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            i = int(np.flatnonzero(~np.isfinite(labels))[0])
            raise BadData(f"{data.source}: label of row {i + 1} is {labels[i]}: every row needs a label")
    values, y = np.unique(labels, return_inverse=True)
    if len(values) < 2:
        raise BadData(f"{data.source}: every row has the label {_name(values[0])!r}: a classifier needs "
                        f"at least 2 classes")
    y_test = None
    if data.labels_test is not None:
        at = np.searchsorted(values, data.labels_test)
        at = np.minimum(at, len(values) - 1)
        unknown = values[at] != data.labels_test
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            raise BadData(f"{data.source}: test label {_name(data.labels_test[i])!r} (row {i + 1}) is not "
                            f"among the training data's classes")
        y_test = at.astype(np.int64)
    names = tuple(_name(v) for v in values)
    if data.label_names is not None and values.dtype.kind in "iu":
        names = tuple(data.label_names[int(v)] for v in values)
    return y.astype(np.int64), y_test, names


def _name(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


# ---------------------------------------------------------------------------------------------
# Splits and scaling
# ---------------------------------------------------------------------------------------------
def stratified_split(y: np.ndarray, fraction: float, seed, what: str, source: str,
                     names: tuple = ()) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) row indices, each class held out in `fraction` of its rows (at least one,
    never all), by a generator seeded with `seed`: the same split on every machine. `names`:
    the classes' names, for the message."""
    rng = np.random.default_rng(seed)
    kept, held = [], []
    counts = np.bincount(y)
    for c, n in enumerate(counts):
        if n < 2:
            name = repr(names[c]) if c < len(names) else c
            raise BadData(f"{source}: class {name} has {n} row{'s' if n != 1 else ''} left for the {what} "
                          f"split; stratifying needs at least 2 of each class there")
        rows = rng.permutation(np.flatnonzero(y == c))
        k = min(max(int(round(n * fraction)), 1), n - 1)
        held.append(rows[:k])
        kept.append(rows[k:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


@dataclass
class Scaling:
    """How raw features become the model's inputs: "standard" ((x - mean) / std, the training
    part's; a constant column's std is 1, so it stays finite), "pixels" (x / 255) or "none"."""
    kind: str
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @classmethod
    def fit(cls, kind: str, X_train: np.ndarray) -> Scaling:
        if kind == "auto":
            kind = "pixels" if X_train.dtype == np.uint8 else "standard"
        if kind != "standard":
            return cls(kind)
        mean = X_train.mean(axis=0, dtype=np.float64)
        std = X_train.std(axis=0, dtype=np.float64)
        std[~(std > 0)] = 1.0
        return cls(kind, mean.astype(np.float32), std.astype(np.float32))

    def apply(self, X: np.ndarray) -> np.ndarray:
        """float32 model inputs (a new array)."""
        out = np.array(X, dtype=np.float32)
        if self.kind == "pixels":
            out /= np.float32(255.0)
        elif self.kind == "standard":
            out -= self.mean
            out /= self.std
        return out


# ---------------------------------------------------------------------------------------------
# The dataset a sweep trains on
# ---------------------------------------------------------------------------------------------
def make_labelled_dataset(data: Labelled, name: str, val_fraction: float, test_fraction: float,
                          seed: int, scale: str = "auto") -> Dataset:
    """Classes, a test set (the one given, else `test_fraction` of the rows held out), a
    validation set (`val_fraction` of the rest) and the scaled float32 inputs. Splits are
    seeded and stratified by class; uint8 images are split as MNIST's always were (a seeded
    permutation: data.split_indices), so the same images give the same tables from an .npz as
    from IDX files."""
    check_values(data)
    y, y_test, classes = classes_of(data)
    X, X_test = data.X, data.X_test
    images = X.dtype == np.uint8
    if X_test is None:
        keep, test = (split_indices(len(y), test_fraction, [seed, 1]) if images
                      else stratified_split(y, test_fraction, [seed, 1], "test", data.source, classes))
        X, X_test, y, y_test = X[keep], X[test], y[keep], y[test]
    tr, va = (split_indices(len(y), val_fraction, seed) if images
              else stratified_split(y, val_fraction, [seed, 2], "validation", data.source, classes))
    scaling = Scaling.fit(scale, X[tr])
    return Dataset(name, scaling.apply(X[tr]), y[tr], scaling.apply(X[va]), y[va], scaling.apply(X_test),
                   y_test, data.files, classes, scaling, data.source, data.feature_names)
