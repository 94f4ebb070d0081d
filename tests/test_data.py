"""mlp_core.data: IDX validation (every error names the file), the download path against a
local HTTP server on 127.0.0.1, preprocessing and the seeded split."""
from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import socket
import threading

import numpy as np
import pytest

from helpers import MNIST_DIR, write_idx
from mlp_core.data import (
    DATASETS,
    DataError,
    download_file,
    load_dataset,
    locate_files,
    make_dataset,
    read_idx_images,
    read_idx_labels,
    read_idx_pair,
    split_indices,
    to_features,
)

rng = np.random.default_rng(0)
IMAGES = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
LABELS = np.array([0, 9, 3, 3, 1], dtype=np.uint8)


def test_known_facts_of_the_mnist_test_set(mnist_t10k):
    X, y = mnist_t10k
    assert X.shape == (10000, 28, 28) and X.dtype == np.uint8
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the famous first row


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip_gzipped_or_not(tmp_path, compress):
    ip = write_idx(tmp_path / "i", IMAGES, 0x803, compress)
    lp = write_idx(tmp_path / "l", LABELS, 0x801, compress)
    X, y = read_idx_pair(ip, lp)
    np.testing.assert_array_equal(X, IMAGES)
    np.testing.assert_array_equal(y, LABELS)


def _expect(path_fn, reader, message):
    with pytest.raises(DataError) as e:
        reader(path_fn)
    assert str(path_fn) in str(e.value)
    assert message in str(e.value)


def test_wrong_magic_images_file_that_is_really_labels(tmp_path):
    p = write_idx(tmp_path / "train-images-idx3-ubyte.gz", LABELS, 0x801)
    _expect(p, read_idx_images, "wrong magic number 0x00000801, expected 0x00000803")
    _expect(p, read_idx_images, "looks like a labels file")


def test_wrong_magic_labels_file(tmp_path):
    p = write_idx(tmp_path / "l.gz", IMAGES, 0x803)
    _expect(p, read_idx_labels, "looks like an images file")


def test_not_28_by_28(tmp_path):
    p = write_idx(tmp_path / "i.gz", np.zeros((2, 32, 32), np.uint8), 0x803)
    _expect(p, read_idx_images, "images are 32x32, expected 28x28")


def test_truncated_body(tmp_path):
    raw = gzip.decompress(write_idx(tmp_path / "x.gz", IMAGES, 0x803).read_bytes())
    p = tmp_path / "short"
    p.write_bytes(raw[:-100])
    _expect(p, read_idx_images, "truncated: header promises 3920 bytes of data, file has 3820")


def test_truncated_header_and_trailing_bytes(tmp_path):
    p = tmp_path / "tiny"
    p.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    _expect(p, read_idx_images, "truncated IDX header")
    raw = gzip.decompress(write_idx(tmp_path / "x.gz", LABELS, 0x801).read_bytes())
    q = tmp_path / "long"
    q.write_bytes(raw + b"\x00\x00")
    _expect(q, read_idx_labels, "2 unexpected trailing bytes")


def test_truncated_and_corrupt_gzip(tmp_path):
    good = write_idx(tmp_path / "g.gz", IMAGES, 0x803).read_bytes()
    t = tmp_path / "truncated.gz"
    t.write_bytes(good[: len(good) // 2])
    _expect(t, read_idx_images, "corrupt or truncated gzip")
    c = tmp_path / "corrupt.gz"
    c.write_bytes(good[:10] + bytes(b ^ 0xFF for b in good[10:40]) + good[40:])
    _expect(c, read_idx_images, "corrupt or truncated gzip")


def test_label_outside_0_9(tmp_path):
    p = write_idx(tmp_path / "l.gz", np.array([1, 2, 10, 3], np.uint8), 0x801)
    _expect(p, read_idx_labels, "label 10 at index 2 is outside 0-9")


def test_counts_differ(tmp_path):
    ip = write_idx(tmp_path / "i.gz", IMAGES, 0x803)
    lp = write_idx(tmp_path / "l.gz", LABELS[:4], 0x801)
    with pytest.raises(DataError, match="has 5 images but .* has 4 labels"):
        read_idx_pair(ip, lp)


def test_missing_file(tmp_path):
    _expect(tmp_path / "absent.gz", read_idx_images, "file not found")


def test_features_and_split():
    X = to_features(IMAGES)
    assert X.dtype == np.float32 and X.shape == (5, 784)
    assert X.max() <= 1.0 and X[0, 0] == np.float32(IMAGES[0, 0, 0]) / np.float32(255)
    np.testing.assert_array_equal(X[1], IMAGES[1].reshape(-1) / np.float32(255))  # row-major
    tr, va = split_indices(1000, 0.2, seed=3)
    assert len(va) == 200 and len(tr) == 800
    assert set(tr).isdisjoint(va) and set(tr) | set(va) == set(range(1000))
    tr2, va2 = split_indices(1000, 0.2, seed=3)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, split_indices(1000, 0.2, seed=4)[1])


def test_the_parts_of_a_dataset_are_the_images_its_split_names():
    """Split as bytes, scaled after: each part's rows are the images (and labels) the seeded split
    names, pixel / 255 in float32, and the test set is scaled the same way."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 50).astype(np.uint8)
    ds = make_dataset("mnist", images, labels, images[:7], labels[:7], val_fraction=0.2, seed=5)
    tr, va = split_indices(50, 0.2, seed=5)
    for X, y, idx in ((ds.X_train, ds.y_train, tr), (ds.X_val, ds.y_val, va)):
        assert X.dtype == np.float32 and X.flags.c_contiguous and y.dtype == np.int64
        for row, i in enumerate(idx):
            np.testing.assert_array_equal(X[row], images[i].reshape(-1).astype(np.float32) / 255)
            assert y[row] == labels[i]
    assert len(ds.X_train) == 40 and len(ds.X_val) == 10
    np.testing.assert_array_equal(ds.X_test, to_features(images[:7]))


def test_load_dataset_from_directory(small_data_dir):
    ds = load_dataset("mnist", small_data_dir, download=False)
    assert ds.X_train.shape == (6400, 784) and ds.X_val.shape == (1600, 784)
    assert ds.X_test.shape == (2000, 784) and ds.y_test.dtype == np.int64
    assert len(ds.files["train_images"]["sha256"]) == 64


# --- download -----------------------------------------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve(tmp_path):
    """serve(dir) -> base URL of an HTTP server on 127.0.0.1 serving that directory."""
    servers = []

    def start(directory):
        handler = functools.partial(_Quiet, directory=str(directory))
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _dead_url():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


SPEC = DATASETS["mnist"].files["test_labels"]


def test_good_download_verified_and_atomic(tmp_path, serve):
    url = serve(MNIST_DIR)
    cache = tmp_path / "cache"
    path = download_file(SPEC, (url,), cache)
    assert path == cache / "t10k-labels-idx1-ubyte.gz"
    assert path.read_bytes() == (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()
    assert [p.name for p in cache.iterdir()] == [path.name]


def test_corrupt_download_rejected_then_next_mirror(tmp_path, serve):
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    good = (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (bad_dir / "t10k-labels-idx1-ubyte.gz").write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        download_file(SPEC, (serve(bad_dir),), cache)
    assert not cache.exists()  # nothing half-written or unverified left behind, not even the folder
    path = download_file(SPEC, (serve(bad_dir), _dead_url(), serve(MNIST_DIR)), cache)
    assert path.read_bytes() == good


def test_offline_error_names_missing_files_and_where(tmp_path, monkeypatch, small_data_dir):
    d = tmp_path / "data"
    d.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(small_data_dir / name, d / name)
    monkeypatch.setenv("MLP_SWEEP_MIRRORS", _dead_url())
    with pytest.raises(DataError) as e:
        locate_files("mnist", d)
    msg = str(e.value)
    assert str(d) in msg and "t10k-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    # one short line per missing file, no URL in sight
    assert msg.splitlines()[1:3] == ["  t10k-images-idx3-ubyte.gz", "  t10k-labels-idx1-ubyte.gz"]
    assert "train-images" not in msg and "http" not in msg
    assert sorted(p.name for p in d.iterdir()) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_missing_files_are_fetched_into_the_data_dir(tmp_path, monkeypatch, serve, small_data_dir):
    d = tmp_path / "data"
    d.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(small_data_dir / name, d / name)
    monkeypatch.setenv("MLP_SWEEP_MIRRORS", _dead_url() + "," + serve(MNIST_DIR))
    ds = load_dataset("mnist", d)
    assert ds.X_test.shape == (10000, 784)
    assert ds.files["test_images"]["sha256"] == DATASETS["mnist"].files["test_images"].gz_sha256[0]


def test_default_cache_location(tmp_path, monkeypatch, serve, small_data_dir):
    monkeypatch.setenv("MLP_SWEEP_CACHE", str(tmp_path / "cache-root"))
    monkeypatch.setenv("MLP_SWEEP_MIRRORS", serve(MNIST_DIR))
    target = tmp_path / "cache-root" / "mnist"
    target.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(small_data_dir / name, target / name)
    paths = locate_files("mnist")
    assert paths["test_labels"] == target / "t10k-labels-idx1-ubyte.gz"


def test_a_mirror_that_accepts_and_stalls_is_given_up_within_the_budget(tmp_path, monkeypatch):
    """A server that accepts connections and never answers: the whole download (two files, two
    mirrors each) gives up within the budget (90 s by default; 2 s here) with the offline
    message, not a timeout per file and mirror."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []

    def accept():  # take every connection, say nothing
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass
    stop = threading.Event()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/"
    monkeypatch.setenv("MLP_SWEEP_MIRRORS", url + "," + url)
    monkeypatch.setenv("MLP_SWEEP_DOWNLOAD_BUDGET_S", "2")
    t0 = time.monotonic()
    try:
        with pytest.raises(DataError, match="not downloaded .* within 2 s"):
            locate_files("mnist", tmp_path, roles=("test_images", "test_labels"))
    finally:
        stop.set()
        thread.join()
        for c in held:
            c.close()
        server.close()
    assert time.monotonic() - t0 < 2 + 3  # the budget, and a little slack for the machine
    assert list(tmp_path.iterdir()) == []
