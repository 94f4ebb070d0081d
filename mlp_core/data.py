"""MNIST-style data: read and validate IDX files, fetch them from public mirrors, split and scale.

Leaves out the model and training; nothing here imports Ray, pandas or matplotlib.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import atomic_write

IMAGE_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABEL_MAGIC = 0x00000801  # unsigned byte, 1 dimension
ROWS = COLS = 28
N_CLASSES = 10

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

CACHE_ENV = "MLP_SWEEP_CACHE"  # root of the per-user download cache
MIRRORS_ENV = "MLP_SWEEP_MIRRORS"  # comma-separated base URLs that replace the built-in mirrors


class DataError(Exception):
    """A data file is missing, unreadable or not what it claims to be; the message names it."""


@dataclass(frozen=True)
class FileSpec:
    """One canonical file. A download is accepted when the .gz bytes match one of `gz_sha256`
    or, where known, the decompressed IDX bytes match `idx_sha256` (Fashion-MNIST's archives
    are recompressed by some distributors, so their content hash is the stable one)."""

    name: str
    count: int
    gz_sha256: tuple[str, ...] = ()
    idx_sha256: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    mirrors: tuple[str, ...]
    files: dict[str, FileSpec] = field(default_factory=dict)
    classes: tuple[str, ...] = tuple(str(k) for k in range(10))  # the names of labels 0-9


# Zalando's names for Fashion-MNIST's labels 0-9 (its README).
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        files={
            "train_images": FileSpec(
                FILE_NAMES["train_images"], 60000,
                ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",)),
            "train_labels": FileSpec(
                FILE_NAMES["train_labels"], 60000,
                ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",)),
            "test_images": FileSpec(
                FILE_NAMES["test_images"], 10000,
                ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",),
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            "test_labels": FileSpec(
                FILE_NAMES["test_labels"], 10000,
                ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",),
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        },
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        files={
            "train_images": FileSpec(FILE_NAMES["train_images"], 60000, (),
                                     "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            "train_labels": FileSpec(FILE_NAMES["train_labels"], 60000, (),
                                     "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            "test_images": FileSpec(FILE_NAMES["test_images"], 10000, (),
                                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            "test_labels": FileSpec(FILE_NAMES["test_labels"], 10000, (),
                                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        },
        classes=FASHION_CLASSES,
    ),
}


def class_names(dataset: str | None) -> tuple[str, ...]:
    """The names of a dataset's labels 0-9 (digits for MNIST and for a name not known)."""
    spec = DATASETS.get(dataset or "")
    return spec.classes if spec else DatasetSpec("", ()).classes


# ---------------------------------------------------------------------------------------------
# IDX reading and validation
# ---------------------------------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    """The file's IDX bytes, transparently gunzipped (detected by the gzip magic, not the name)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def _parse_idx(path: Path, data: bytes, magic: int, ndim: int) -> tuple[tuple[int, ...], memoryview]:
    header_len = 4 + 4 * ndim
    if len(data) < 4:
        raise DataError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        kinds = {IMAGE_MAGIC: "an images file", LABEL_MAGIC: "a labels file"}
        what = kinds.get(found, "not an IDX file of unsigned bytes")
        raise DataError(
            f"{path}: wrong magic number 0x{found:08x}, expected 0x{magic:08x} "
            f"({kinds[magic][2:]}); this looks like {what}")
    if len(data) < header_len:
        raise DataError(f"{path}: truncated IDX header ({len(data)} of {header_len} bytes)")
    dims = struct.unpack(">" + "I" * ndim, data[4:header_len])
    expected = int(np.prod(dims, dtype=np.int64))
    body = memoryview(data)[header_len:]
    if len(body) < expected:
        raise DataError(
            f"{path}: truncated: header promises {expected} bytes of data, file has {len(body)}")
    if len(body) > expected:
        raise DataError(
            f"{path}: {len(body) - expected} unexpected trailing bytes after the data")
    return dims, body


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Images of an IDX3 file as uint8 (N, 28, 28); raises DataError naming the file."""
    path = Path(path)
    dims, body = _parse_idx(path, _read_bytes(path), IMAGE_MAGIC, 3)
    n, rows, cols = dims
    if (rows, cols) != (ROWS, COLS):
        raise DataError(f"{path}: images are {rows}x{cols}, expected {ROWS}x{COLS}")
    return np.frombuffer(body, dtype=np.uint8).reshape(n, rows, cols)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Labels of an IDX1 file as uint8 (N,), each 0-9; raises DataError naming the file."""
    path = Path(path)
    _, body = _parse_idx(path, _read_bytes(path), LABEL_MAGIC, 1)
    labels = np.frombuffer(body, dtype=np.uint8)
    bad = np.flatnonzero(labels >= N_CLASSES)
    if bad.size:
        raise DataError(
            f"{path}: label {int(labels[bad[0]])} at index {int(bad[0])} is outside 0-9 "
            f"({bad.size} such labels)")
    return labels


def read_idx_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels that belong together; their counts must agree."""
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    return images, labels


# ---------------------------------------------------------------------------------------------
# Locating and downloading
# ---------------------------------------------------------------------------------------------
def write_idx(path: str | os.PathLike, array: np.ndarray, magic: int, compress: bool = True) -> Path:
    """A uint8 array as an IDX file (gzipped when `compress`), the canonical layout that
    read_idx_* read: for data a user makes, and for the tests' and benchmarks' small splits."""
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    with atomic_write(path) as f:
        f.write(gzip.compress(data, mtime=0) if compress else data)
    return Path(path)


def write_split(d: str | os.PathLike, images: np.ndarray, labels: np.ndarray, n_train: int) -> Path:
    """The first `n_train` images as a dataset's training files in `d`, the rest as its test
    files, in the four-file layout a sweep's --data-dir reads."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    for part, sl in (("train", slice(None, n_train)), ("t10k", slice(n_train, None))):
        write_idx(d / f"{part}-images-idx3-ubyte.gz", images[sl], IMAGE_MAGIC)
        write_idx(d / f"{part}-labels-idx1-ubyte.gz", labels[sl], LABEL_MAGIC)
    return d


def default_cache_dir(dataset: str) -> Path:
    """Where downloads go when no --data-dir is given: $MLP_SWEEP_CACHE/<dataset>, else
    $XDG_CACHE_HOME/mlp-sweep/<dataset>, else ~/.cache/mlp-sweep/<dataset>."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = os.path.join(xdg, "mlp-sweep") if xdg else os.path.join(Path.home(), ".cache", "mlp-sweep")
    return Path(root).expanduser().resolve() / dataset


def resolve_data_dir(dataset: str, data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir).expanduser().resolve() if data_dir else default_cache_dir(dataset)


def find_file(data_dir: Path, spec: FileSpec) -> Path | None:
    """The file in `data_dir`, gzipped (`NAME.gz`) or not (`NAME`), or None."""
    for candidate in (data_dir / (spec.name + ".gz"), data_dir / spec.name):
        if candidate.is_file():
            return candidate
    return None


def mirrors_for(dataset: DatasetSpec) -> tuple[str, ...]:
    env = os.environ.get(MIRRORS_ENV, "").strip()
    if env:
        return tuple(m.strip() for m in env.split(",") if m.strip())
    return dataset.mirrors


def _verify(spec: FileSpec, raw: bytes) -> bool:
    if hashlib.sha256(raw).hexdigest() in spec.gz_sha256:
        return True
    if spec.idx_sha256 is None:
        return False
    try:
        payload = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (EOFError, OSError, zlib.error):
        return False
    return hashlib.sha256(payload).hexdigest() == spec.idx_sha256


# The most a whole download (every missing file, every mirror) may take before the offline
# message: a mirror that accepts the connection and then stalls must not hold a run for minutes.
DOWNLOAD_BUDGET_ENV = "MLP_SWEEP_DOWNLOAD_BUDGET_S"
DOWNLOAD_BUDGET_S = 90.0


def download_budget() -> float:
    try:
        return float(os.environ.get(DOWNLOAD_BUDGET_ENV, DOWNLOAD_BUDGET_S))
    except ValueError:
        return DOWNLOAD_BUDGET_S


def download_file(spec: FileSpec, mirrors: tuple[str, ...], dest_dir: Path,
                  timeout: float = 30.0, deadline: float | None = None) -> Path:
    """Fetch `spec` as NAME.gz into dest_dir, trying each mirror in turn until `deadline` (a
    time.monotonic() value; default: the download budget from now).

    A download whose SHA-256 does not match is discarded and the next mirror tried; the file
    appears in dest_dir only complete and verified (temporary file, then atomic rename)."""
    if deadline is None:
        deadline = time.monotonic() + download_budget()
    target = dest_dir / (spec.name + ".gz")
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + spec.name + ".gz"
        left = deadline - time.monotonic()
        if left <= 0:
            failures.append("out of time")
            break
        try:
            with urllib.request.urlopen(url, timeout=min(timeout, left)) as response:
                raw = _read_by(response, deadline)
        except (urllib.error.URLError, OSError, ValueError) as e:
            failures.append(f"{url}: {getattr(e, 'reason', None) or e}")
            continue
        if not _verify(spec, raw):
            failures.append(f"{url}: SHA-256 mismatch, download rejected")
            continue
        dest_dir.mkdir(parents=True, exist_ok=True)  # only once there is something verified to keep
        with atomic_write(target) as f:
            f.write(raw)
        return target
    raise DataError(f"could not download {spec.name}.gz: " + "; ".join(failures))


def _read_by(response, deadline: float) -> bytes:
    """The response's body, read in pieces; TimeoutError once `deadline` passes (a server that
    trickles bytes never trips a per-read timeout)."""
    parts = []
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the download ran out of time")
        piece = response.read(1 << 16)
        if not piece:
            return b"".join(parts)
        parts.append(piece)


def locate_files(dataset: str, data_dir: str | os.PathLike | None = None,
                 download: bool = True, roles=ROLES) -> dict[str, Path]:
    """Paths of the dataset's files (`roles`: all four by default), downloading what is missing
    unless download=False, within the download budget in all."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    ds = DATASETS[dataset]
    directory = resolve_data_dir(dataset, data_dir)
    if data_dir is not None and not directory.is_dir() and not download:
        raise DataError(f"data directory {directory} does not exist")
    found = {role: find_file(directory, ds.files[role]) for role in roles}
    missing = [role for role in roles if found[role] is None]
    if missing and download:
        deadline = time.monotonic() + download_budget()
        failed = []
        for role in missing:
            try:
                found[role] = download_file(ds.files[role], mirrors_for(ds), directory, deadline=deadline)
            except DataError:
                failed.append(role)
            except OSError as e:
                raise DataError(f"cannot write to data directory {directory}: {e.strerror or e}") from None
        if failed:  # one short line per missing file
            lines = [f"  {ds.files[r].name}.gz" for r in failed]
            raise DataError(f"{dataset}: files missing from {directory} and not downloaded (offline, "
                            f"or no mirror answered within {download_budget():.0f} s):\n"
                            + "\n".join(lines) + "\nPut them there, or pass --data-dir "
                            f"(mirrors: set {MIRRORS_ENV})")
    elif missing:
        raise DataError(
            f"{dataset}: missing from {directory}: "
            f"{', '.join(ds.files[r].name + '[.gz]' for r in missing)}")
    return found  # type: ignore[return-value]


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------
def to_features(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 784), row-major flattening, pixels / 255."""
    X = images.reshape(len(images), -1).astype(np.float32)
    X /= np.float32(255.0)
    return X


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation of range(n) cut into (train, validation) index arrays."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


@dataclass
class Dataset:
    """The model's float32 inputs (N, D), already scaled (MNIST's: pixels / 255, D = 784), and
    int64 classes 0..C-1, already split."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    files: dict[str, dict] = field(default_factory=dict)  # role -> {"path", "sha256"}
    classes: tuple[str, ...] = DatasetSpec("", ()).classes  # class k's name
    # How raw features became these inputs (tabular.Scaling; None: MNIST's pixels / 255)
    scaling: object = None
    source: str = ""  # where the data came from, as the report and model.json name it
    feature_names: list[str] = field(default_factory=list)

    @property
    def n_inputs(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def facts(self) -> dict:
        """What sweep.json, model.json and the report say of the data: where it came from, its
        rows per split, its features and classes, each class's rows, how its inputs are scaled."""
        counts = np.bincount(np.concatenate([self.y_train, self.y_val, self.y_test]), minlength=self.n_classes)
        return {"source": self.source, "rows": {"train": len(self.y_train), "validation": len(self.y_val),
                                                "test": len(self.y_test)},
                "features": self.n_inputs, "feature_names": list(self.feature_names),
                "classes": list(self.classes),
                "class_counts": {c: int(n) for c, n in zip(self.classes, counts, strict=True)},
                "scaling": self.scaling.kind if self.scaling is not None else "pixels"}


def make_dataset(name: str, train_images: np.ndarray, train_labels: np.ndarray,
                 test_images: np.ndarray, test_labels: np.ndarray,
                 val_fraction: float = 0.2, seed: int = 0,
                 files: dict | None = None) -> Dataset:
    """Split the training images into train and validation by `seed`, then scale each part:
    split as bytes, so no float32 copy of the whole training set is made beside its parts (the
    driver's peak; BENCHMARKS.md, "Per-trial overhead")."""
    y = train_labels.astype(np.int64)
    tr, va = split_indices(len(train_images), val_fraction, seed)
    return Dataset(name, to_features(train_images[tr]), y[tr], to_features(train_images[va]), y[va],
                   to_features(test_images), test_labels.astype(np.int64), files or {},
                   class_names(name), source=f"{name}: IDX files")


def load_test_set(name: str = "mnist", data_dir: str | os.PathLike | None = None,
                  download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The test images (scaled) and labels alone: all that evaluating a model needs, so the
    training files need not be there."""
    paths = locate_files(name, data_dir, download=download, roles=("test_images", "test_labels"))
    images, labels = read_idx_pair(paths["test_images"], paths["test_labels"])
    return to_features(images), labels.astype(np.int64)


def load_dataset(name: str = "mnist", data_dir: str | os.PathLike | None = None,
                 val_fraction: float = 0.2, seed: int = 0, download: bool = True) -> Dataset:
    """Locate (downloading if allowed), validate, scale and split a dataset."""
    paths = locate_files(name, data_dir, download=download)
    train_images, train_labels = read_idx_pair(paths["train_images"], paths["train_labels"])
    test_images, test_labels = read_idx_pair(paths["test_images"], paths["test_labels"])
    files = {role: {"path": str(p), "sha256": sha256_file(p)} for role, p in paths.items()}
    return make_dataset(name, train_images, train_labels, test_images, test_labels,
                        val_fraction, seed, files)
