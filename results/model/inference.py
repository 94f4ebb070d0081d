"""Using an exported model: its accuracy, per-class accuracy and confusion matrix on a test set,
and its predictions for image files (PNG, JPEG, BMP, PGM/PPM or .npy), checked before decoding.

Leaves out training and export (retrain.py, export.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mlp_core.data import N_CLASSES, DataError, class_names, load_test_set
from mlp_core.model import cross_entropy, forward, predict_proba

from . import plots
from .load import load_model


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int = N_CLASSES) -> np.ndarray:
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def evaluate_model(model_dir: str | Path, data_dir: str | None = None, dataset: str | None = None
                   ) -> dict:
    """Test-set accuracy, loss, per-class accuracy and confusion matrix of an exported model;
    writes confusion_matrix.png beside the model."""
    params, meta = load_model(model_dir)
    name = dataset or (meta.get("dataset") or {}).get("name") or "mnist"
    X_test, y_test = load_test_set(name, data_dir)  # the training files need not be there
    logits = forward(params, X_test)  # one pass serves loss, accuracy and the matrix
    loss = cross_entropy(logits, y_test)
    pred = logits.argmax(axis=1)
    acc = float(np.mean(pred == y_test))
    cm = confusion_matrix(y_test, pred)
    per_class = (np.diag(cm) / np.maximum(cm.sum(axis=1), 1)).tolist()
    model_dir = Path(model_dir)
    folder = model_dir if model_dir.is_dir() else model_dir.parent
    classes = class_names(name)
    png = plots.save_figure(plots.plot_confusion(cm, f"Confusion matrix on the {name} test set "
                                                     f"(accuracy {acc:.4f})", classes),
                            folder / "confusion_matrix.png")
    return {"dataset": name, "classes": list(classes), "n": int(len(y_test)), "accuracy": acc, "loss": loss,
            "per_class_accuracy": per_class, "confusion_matrix": cm.tolist(), "png": str(png)}


# Decoded formats: these only (never a file handed to Ghostscript or another outside decoder).
IMAGE_FORMATS = ["PNG", "JPEG", "BMP", "PPM"]  # PPM covers PGM too


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
    classes = class_names((meta.get("dataset") or {}).get("name"))
    images = [load_image(f) for f in files]
    inverted = [light_background(x) for x in images]  # shown to the model as MNIST draws them
    X = np.stack([1 - x if inv else x for x, inv in zip(images, inverted, strict=True)])
    proba = predict_proba(params, X)
    return [{"file": str(f), "digit": int(p.argmax()), "class": classes[int(p.argmax())],
             "probability": float(p.max()), "inverted": inv}
            for f, p, inv in zip(files, proba, inverted, strict=True)]

