"""Using an exported model: its accuracy, per-class accuracy and confusion matrix on a test set,
and its predictions for image files (PNG, JPEG, BMP, PGM/PPM or .npy), checked before decoding.

Leaves out training and export (retrain.py, export.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mlp_core.data import N_CLASSES, DataError, class_names, load_test_set
from mlp_core.model import cross_entropy, forward, predict_proba, raw_inputs

from ..errors import RunError
from ..folder.dataset import dataset_for_run
from ..folder.table import load_sweep
from . import plots
from .load import load_model


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int = N_CLASSES) -> np.ndarray:
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def takes_features(meta: dict, files: list[str] = ()) -> bool:
    """Whether the model takes rows of features (predict_rows) rather than 28x28 images: one
    trained on data other than MNIST's IDX files (it names its classes in model.json), unless it
    is an image model of 28x28 pixels and `files` are images."""
    if "classes" not in meta:
        return False
    images = meta["arrays"]["W1"][0] == 784 and (meta.get("dataset") or {}).get("scaling") == "pixels"
    return not (images and files and all(Path(f).suffix.lower() in IMAGE_SUFFIXES for f in files))


def evaluate_model(model_dir: str | Path, data_dir: str | None = None, dataset: str | None = None,
                   data: str | None = None) -> dict:
    """Test-set accuracy, loss, per-class accuracy and confusion matrix of an exported model;
    writes confusion_matrix.png beside the model. The test set: MNIST's (or `dataset`'s) test
    files; for a model of other data, its run's test split (`data`: where the run's data file is
    now, if it moved), read raw and scaled by the model itself, as any user's rows would be."""
    params, meta = load_model(model_dir)
    if takes_features(meta):
        name, classes, X_test, y_test = _run_test_split(Path(model_dir), meta, data)
        X_test = raw_inputs(params, X_test)
    else:
        name = dataset or (meta.get("dataset") or {}).get("name") or "mnist"
        classes = class_names(name)
        X_test, y_test = load_test_set(name, data_dir)  # the training files need not be there
    logits = forward(params, X_test)  # one pass serves loss, accuracy and the matrix
    loss = cross_entropy(logits, y_test)
    pred = logits.argmax(axis=1)
    acc = float(np.mean(pred == y_test))
    cm = confusion_matrix(y_test, pred, len(classes))
    per_class = (np.diag(cm) / np.maximum(cm.sum(axis=1), 1)).tolist()
    model_dir = Path(model_dir)
    folder = model_dir if model_dir.is_dir() else model_dir.parent
    png = plots.save_figure(plots.plot_confusion(cm, f"Confusion matrix on the {name} test set "
                                                     f"(accuracy {acc:.4f})", classes),
                            folder / "confusion_matrix.png")
    return {"dataset": name, "rows": takes_features(meta), "classes": list(classes), "n": int(len(y_test)),
            "accuracy": acc, "loss": loss,
            "per_class_accuracy": per_class, "confusion_matrix": cm.tolist(), "png": str(png)}


def _run_test_split(model_dir: Path, meta: dict, data: str | None):
    """(its name, the classes, raw test features, test classes) of the run the model was
    exported from: the run folder holding best/."""
    folder = (model_dir if model_dir.is_dir() else model_dir.parent).parent
    try:
        sweep = load_sweep(folder)
    except RunError:
        raise DataError(f"{model_dir}: a model of your own data is evaluated on its run's test split; "
                        f"keep it in its run folder (RUN/best)") from None
    # raw features: a standardising model scales them itself (an image model takes pixels / 255)
    found = dataset_for_run({**sweep, "scale": "none"} if sweep["scale"] != "pixels" else sweep, data)
    if list(found.classes) != list(meta["classes"]):
        raise DataError(f"{model_dir}: its classes are not those of the run's data {found.source}")
    return found.source, found.classes, found.X_test, found.y_test


# Decoded formats: these only (never a file handed to Ghostscript or another outside decoder).
IMAGE_FORMATS = ["PNG", "JPEG", "BMP", "PPM"]  # PPM covers PGM too
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm")


def load_image(path: str | Path) -> np.ndarray:
    """One 28x28 image as float32 (784,) scaled to [0, 1]: a PNG, JPEG, BMP or PGM/PPM (converted
    to greyscale; transparent pixels composited onto black, the MNIST background) or a .npy of
    shape (28, 28) or (784,) (uint8 0-255, or floats already in [0, 1]). The size is read from
    the header and refused before anything is decoded."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: a folder, not an image")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() == ".npy":
        return _load_npy_image(path)
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as im:
            if im.size != (28, 28):  # from the header: nothing decoded yet
                raise DataError(f"{path}: image is {im.size[0]}x{im.size[1]}, expected 28x28")
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                black = Image.new("RGBA", im.size, (0, 0, 0, 255))
                im = Image.alpha_composite(black, im.convert("RGBA"))
            arr = np.asarray(im.convert("L"), dtype=np.uint8)
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a PNG, JPEG, BMP or PGM/PPM image") from None
    except Image.DecompressionBombError as e:  # raised by PIL from the header, before decoding
        raise DataError(f"{path}: refused before decoding: its header claims far more than 28x28 "
                        f"pixels ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    return arr.astype(np.float32).reshape(784) / np.float32(255)


def _load_npy_image(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        kind = "a zip archive (an .npz?)" if magic[:2] == b"PK" else "not a .npy array"
        raise DataError(f"{path}: refused: {kind}, not a .npy file")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: refused: not a plain .npy array ({e})") from None
    if arr.shape not in ((28, 28), (784,)):
        raise DataError(f"{path}: shape {arr.shape}, expected (28, 28) or (784,)")
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / np.float32(255)
    elif np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer):
        x = arr.astype(np.float32)
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise DataError(f"{path}: values must be uint8 0-255 or floats in [0, 1]")
    else:
        raise DataError(f"{path}: dtype {arr.dtype} is not an image")
    return x.reshape(784)


def light_background(x: np.ndarray) -> bool:
    """Whether a (784,) image in [0, 1] is a dark figure on a light background (a scan or a
    drawing), unlike MNIST's light figure on black: its 3-pixel border is brighter than its
    centre."""
    img = x.reshape(28, 28)
    border = np.concatenate([img[:3].ravel(), img[-3:].ravel(), img[3:-3, :3].ravel(), img[3:-3, -3:].ravel()])
    return float(border.mean()) > float(img[7:21, 7:21].mean())


def predict_files(model_dir: str | Path, files: list[str]) -> list[dict]:
    """Each file's predicted label (`digit`, kept under that name for tools that read it), the
    label's name in the model's dataset (`class`), its probability, and whether the image was
    inverted first (`inverted`: a dark figure on a light background)."""
    params, meta = load_model(model_dir)
    classes = meta.get("classes") or class_names((meta.get("dataset") or {}).get("name"))
    images = [load_image(f) for f in files]
    inverted = [light_background(x) for x in images]  # shown to the model as MNIST draws them
    X = np.stack([1 - x if inv else x for x, inv in zip(images, inverted, strict=True)])
    proba = predict_proba(params, X)
    return [{"file": str(f), "digit": int(p.argmax()), "class": classes[int(p.argmax())],
             "probability": float(p.max()), "inverted": inv}
            for f, p, inv in zip(files, proba, inverted, strict=True)]


def read_rows(path: str | Path, meta: dict) -> np.ndarray:
    """Rows of raw features for a model of your own data: a CSV or TSV whose columns are matched
    to the model's features by name (others, such as the label, are left out), or a .npy (N, D)
    or (D,) in the model's order."""
    path = Path(path)
    names = list((meta.get("dataset") or {}).get("feature_names") or [])
    D = meta["arrays"]["W1"][0]
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() == ".npy":
        X = _plain_npy(path)
        X = X.reshape(1, -1) if X.ndim == 1 else X
        if X.ndim != 2 or X.shape[1] != D:
            raise DataError(f"{path}: shape {X.shape}; the model takes rows of {D} features")
    elif path.suffix.lower() in (".csv", ".tsv"):
        import pandas as pd
        try:
            frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
        except (ValueError, OSError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not a readable table ({str(e).splitlines()[0]})") from None
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise DataError(f"{path}: no column {', '.join(map(repr, missing[:5]))}"
                            f"{' ...' if len(missing) > 5 else ''}; the model takes {', '.join(names[:8])}"
                            f"{' ...' if len(names) > 8 else ''}")
        for n in names:
            numbers = pd.to_numeric(frame[n], errors="coerce")
            bad = np.flatnonzero(numbers.isna().to_numpy())
            if bad.size:
                i = int(bad[0])
                raise DataError(f"{path}: column {n!r}, row {i + 1} (line {i + 2}): {frame[n].iloc[i]!r} "
                                f"is not a number")
        X = frame[names].to_numpy(dtype=np.float32)
    else:
        raise DataError(f"{path}: rows of features come as .csv, .tsv or .npy")
    if not np.isfinite(np.asarray(X, dtype=np.float64)).all():
        raise DataError(f"{path}: holds missing or infinite values")
    return X


def _plain_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise DataError(f"{path}: refused: not a .npy file")
    try:
        X = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: refused: not a plain .npy array ({e})") from None
    if X.dtype.kind not in "uif":
        raise DataError(f"{path}: dtype {X.dtype}; features must be numbers")
    return X


def predict_rows(model_dir: str | Path, files: list[str]) -> list[dict]:
    """For a model of your own data: each row's class (its name), the class's index and its
    probability, row by row of each file (read_rows)."""
    params, meta = load_model(model_dir)
    classes = meta["classes"]
    out = []
    for f in files:
        X = read_rows(f, meta)
        if meta.get("dataset", {}).get("scaling") == "pixels":
            X = X / np.float32(255)
        proba = predict_proba(params, raw_inputs(params, X))
        out += [{"file": str(f), "row": i + 1, "index": int(p.argmax()), "class": classes[int(p.argmax())],
                 "probability": float(p.max())} for i, p in enumerate(proba)]
    return out
