"""Bad input through the command line: each is a one-line error naming the file or flag, a
non-zero exit, no traceback (unless --debug), and nothing written."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from helpers import cli, write_idx

pytestmark = pytest.mark.slow

IMAGES = "train-images-idx3-ubyte.gz"
LABELS = "train-labels-idx1-ubyte.gz"


def corrupt_gzip(d):
    raw = (d / IMAGES).read_bytes()
    (d / IMAGES).write_bytes(raw[:10] + bytes(b ^ 0x55 for b in raw[10:200]) + raw[200:])


def truncate_gzip(d):
    raw = (d / IMAGES).read_bytes()
    (d / IMAGES).write_bytes(raw[: len(raw) // 3])


def labels_as_images(d):
    shutil.copy(d / LABELS, d / IMAGES)


def count_mismatch(d):
    labels = np.frombuffer(gzip.decompress((d / LABELS).read_bytes()), np.uint8, offset=8)
    write_idx(d / LABELS, labels[:-1], 0x801)


def label_out_of_range(d):
    labels = np.frombuffer(gzip.decompress((d / LABELS).read_bytes()), np.uint8, offset=8).copy()
    labels[5] = 12
    write_idx(d / LABELS, labels, 0x801)


def not_28x28(d):
    write_idx(d / IMAGES, np.zeros((8000, 32, 32), np.uint8), 0x803)


@pytest.mark.parametrize("damage, file, message", [
    (corrupt_gzip, IMAGES, "corrupt or truncated gzip"),
    (truncate_gzip, IMAGES, "corrupt or truncated gzip"),
    (labels_as_images, IMAGES, "wrong magic number 0x00000801, expected 0x00000803"),
    (count_mismatch, LABELS, "has 8000 images but"),
    (label_out_of_range, LABELS, "label 12 at index 5 is outside 0-9"),
    (not_28x28, IMAGES, "images are 32x32, expected 28x28"),
])
def test_bad_data_files(damage, file, message, small_data_dir, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(small_data_dir, d)
    damage(d)
    out = tmp_path / "runs"
    r = cli("run", "--data-dir", d, "--out", out, "--name", "x", timeout=120)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert message in lines[0] and str(d / file) in lines[0]
    assert not out.exists()  # nothing written for a run that could not start


def test_debug_shows_the_traceback(small_data_dir, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(small_data_dir, d)
    truncate_gzip(d)
    r = cli("--debug", "run", "--data-dir", d, "--out", tmp_path / "runs", timeout=120)
    assert r.returncode != 0 and "Traceback" in r.stderr and "DataError" in r.stderr


def _model(tmp_path, **arrays):
    d = tmp_path / "model"
    d.mkdir()
    rng = np.random.default_rng(0)
    base = {"W1": rng.random((784, 8), dtype=np.float32), "b1": np.zeros(8, np.float32),
            "W2": rng.random((8, 10), dtype=np.float32), "b2": np.zeros(10, np.float32)}
    base.update(arrays)
    np.savez(d / "model.npz", **{k: v for k, v in base.items() if v is not None})
    return d


@pytest.mark.parametrize("arrays, message", [
    ({"W1": np.array([{"evil": 1}], dtype=object)}, "refused: holds pickled objects"),
    ({"b2": None}, "missing array(s) b2"),
    ({"W2": np.zeros((9, 10), np.float32)}, "W2 has shape (9, 10), expected (8, 10)"),
    ({"b1": np.zeros(8, np.float64)}, "b1 has dtype float64, expected float32"),
    ({"b1": np.full(8, np.nan, np.float32)}, "b1 contains NaN"),
])
def test_bad_model_files(arrays, message, tmp_path, small_data_dir):
    model = _model(tmp_path, **arrays)
    digit = tmp_path / "d.npy"
    np.save(digit, np.zeros((28, 28), np.uint8))
    for args in (["evaluate", model, "--data-dir", small_data_dir], ["predict", model, digit]):
        r = cli(*args, timeout=120)
        assert r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and str(model / "model.npz") in lines[0]


def test_a_pickle_disguised_as_npy_is_refused(tmp_path, small_data_dir):
    model = _model(tmp_path)
    bad = tmp_path / "img.npy"
    np.save(bad, np.array([object()], dtype=object), allow_pickle=True)
    r = cli("predict", model, bad, timeout=120)
    assert r.returncode == 1 and "refused" in r.stderr and str(bad) in r.stderr
