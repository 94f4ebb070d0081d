"""What the tool writes and reads, against a careless or hostile hand: links planted where it
writes are replaced, never followed; files get the user's umask; model.npz and model.json cannot
silently disagree; an archive or image that would inflate is refused from its headers; the report
escapes what it shows; and bad files are named in one line, with the field, row or column."""
from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import MNIST_DIR, cli, read_idx_raw
from mlp_core.files import umask
from mlp_core.model import ModelFileError, init_params, load_params, save_params
from results.model.load import load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, small_data_dir):
    out = tmp_path_factory.mktemp("integrity")
    r = cli("run", "--data-dir", small_data_dir, "--out", out, "--name", "r", "--hidden", "32",
            "--lr", "0.05,0.1", "--l2", "0.001", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    return out / "r"


def test_links_planted_where_the_tool_writes_are_replaced_never_followed(run, small_data_dir, tmp_path):
    outside = {name: tmp_path / name for name in ("loss.txt", "model.txt", "cm.txt")}
    for p in outside.values():
        p.write_text("not yours\n")
    planted = {run / "plots" / "loss.png": outside["loss.txt"],
               run / "best" / "model.json": outside["model.txt"],
               run / "best" / "confusion_matrix.png": outside["cm.txt"]}
    for link, target in planted.items():
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(target, link.parent))
    r = cli("retrain", run)
    assert r.returncode == 0, r.stderr
    r = cli("evaluate", run / "best", "--data-dir", small_data_dir)
    assert r.returncode == 0, r.stderr
    for link, target in planted.items():
        assert target.read_text() == "not yours\n"
        assert link.is_file() and not link.is_symlink()
        assert oct(link.stat().st_mode & 0o777) == oct(0o666 & ~umask())  # 0644 with umask 022
    for name in ("results.csv", "history.csv", "sweep.json", "report.html", "best/model.npz"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask(), name


def test_model_npz_and_model_json_from_different_exports_are_refused(run, tmp_path):
    params, meta = load_model(run / "best")
    assert len(meta["model_npz_sha256"]) == 64
    save_params(run / "best" / "model.npz", init_params(params.hidden_size, np.random.default_rng(9)))
    with pytest.raises(ModelFileError, match="model.json: describes other weights than .*model.npz"):
        load_model(run / "best")
    r = cli("evaluate", run / "best")
    assert r.returncode == 1 and "describes other weights" in r.stderr and len(r.stderr.splitlines()) == 1
    assert cli("retrain", run).returncode == 0  # a new export: the pair agrees again


def test_a_zip_bomb_is_refused_from_its_headers(tmp_path):
    bomb = tmp_path / "model.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z, z.open("W1.npy", "w") as f:
        zeros = bytes(1 << 20)
        for _ in range(200):  # 200 MB of zeros: about 200 KB once deflated
            f.write(zeros)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ModelFileError, match="W1.npy would inflate from .* to 209715200 bytes"):
        load_params(bomb)
    with pytest.raises(ModelFileError, match="a folder, not an .npz"):
        load_params(tmp_path)


def test_the_report_escapes_what_every_file_holds(run):
    script = "<script>alert(1)</script>"
    sweep = json.loads((run / "sweep.json").read_text())
    (run / "sweep.json").write_text(json.dumps({**sweep, "dataset": script, "scheduler": script}))
    results = pd.read_csv(run / "results.csv", dtype={"trial_id": str})
    results.to_csv(run / "results.csv.bak", index=False)
    results["trial_id"] = results["trial_id"] + script
    results["node_id"] = script
    results.to_csv(run / "results.csv", index=False)
    model = json.loads((run / "best" / "model.json").read_text())
    (run / "best" / "model.json").write_text(json.dumps({**model, "dataset": {**model["dataset"], "name": script},
                                                         "model_npz_sha256": None}))
    try:
        from results.model.report import write_report
        page = write_report(run).read_text()
        assert "<script" not in page and page.count("&lt;script&gt;") >= 4
    finally:
        (run / "sweep.json").write_text(json.dumps(sweep))
        (run / "results.csv.bak").replace(run / "results.csv")
        (run / "best" / "model.json").write_text(json.dumps(model))


def test_a_trial_that_failed_for_good_is_named_in_the_report(run):
    results = pd.read_csv(run / "results.csv", dtype={"trial_id": str})
    results.to_csv(run / "results.csv.bak", index=False)
    worst = results["val_accuracy"].idxmin()
    results.loc[worst, "status"] = "error"
    results.to_csv(run / "results.csv", index=False)
    try:
        from results.model.report import write_report
        page = write_report(run).read_text()
        assert "<h2>Failed trials</h2><p>1 trial failed on every try" in page
        assert results.loc[worst, "trial_id"] in page.split("<h2>Failed trials</h2>")[1].split("<h2>")[0]
    finally:
        (run / "results.csv.bak").replace(run / "results.csv")
    assert "Failed trials" not in write_report(run).read_text()


@pytest.mark.parametrize("edit, message", [
    (lambda run: (run / "results.csv").write_text((run / "results.csv").read_text().splitlines()[0] + "\n"),
     "no finished trials yet (results.csv has none)"),
    (lambda run: (run / "results.csv").write_text((run / "results.csv").read_text().replace(",0.05,", ",fast,", 1)),
     "results.csv: row 1 (line 2), column learning_rate: 'fast' is not a number"),
    (lambda run: (run / "sweep.json").write_text(json.dumps({**json.loads((run / "sweep.json").read_text()),
                                                              "hidden": "32"})),
     "sweep.json: field 'hidden' should be a list of numbers, not '32'"),
])
def test_a_bad_run_file_is_named_in_one_line(run, tmp_path, edit, message):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    edit(copy)
    r = cli("show", copy)
    assert r.returncode == 1, r.stdout
    assert r.stderr.strip().startswith("run_search.py: error: ") and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_model_json_of_the_wrong_shape_is_named(run, tmp_path):
    import shutil

    copy = tmp_path / "best"
    shutil.copytree(run / "best", copy)
    meta = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps({**meta, "dataset": "mnist"}))
    r = cli("evaluate", copy)
    assert r.returncode == 1
    assert "model.json: field 'dataset' should be an object, not 'mnist'" in r.stderr


def png_header_only(path, width, height):
    """A PNG whose header claims width x height, with no image data worth the name."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_predict_names_bad_images_and_fixes_light_backgrounds(run, tmp_path):
    X = read_idx_raw(MNIST_DIR / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    model = run / "best"
    plain, scanned, clear = tmp_path / "plain.png", tmp_path / "scanned.png", tmp_path / "clear.png"
    Image.fromarray(X[0]).save(plain)
    Image.fromarray(255 - X[0]).save(scanned)  # dark digit on white paper
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = 255  # white where transparent: composited onto black it must vanish
    rgba[..., 3] = X[0]  # the digit's strokes are the opaque part
    Image.fromarray(rgba, "RGBA").save(clear)
    r = cli("predict", model, plain, scanned, clear)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    digit = lines[0].split(": ")[1].split()[0]
    assert "inverted" not in lines[0]
    assert lines[1].split(": ")[1].split()[0] == digit and "[dark on light: inverted first]" in lines[1]
    assert lines[2].split(": ")[1].split()[0] == digit and "inverted" not in lines[2]

    np.savez(tmp_path / "renamed.npy", x=X[0])  # np.savez appends .npz: rename it back
    (tmp_path / "renamed.npy.npz").rename(tmp_path / "renamed.npy")
    huge = png_header_only(tmp_path / "huge.png", 30000, 30000)
    for bad, message in ((tmp_path / "renamed.npy", "renamed.npy: refused: a zip archive (an .npz?)"),
                         (tmp_path, f"{tmp_path}: a folder, not an image"),
                         (huge, "huge.png: refused before decoding: its header claims far more than 28x28")):
        r = cli("predict", model, bad)
        assert r.returncode == 1 and message in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    wide = png_header_only(tmp_path / "wide.png", 300, 28)  # below PIL's own bomb limit: ours
    r = cli("predict", model, wide)
    assert r.returncode == 1 and "wide.png: image is 300x28, expected 28x28" in r.stderr


def test_a_name_with_a_trailing_newline_is_refused(tmp_path):
    r = cli("run", "--out", tmp_path, "--name", "ok\n")
    assert r.returncode == 2 and "--name: 'ok\\n' is not allowed" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_resume_refuses_folders_others_could_have_written(tmp_path, small_data_dir):
    """Ray Tune unpickles tuner.pkl on a resume: a run folder, sweep.json or tune/ that is
    group- or world-writable is refused before anything is read, like ssh refuses such keys."""
    from results.folder.table import write_json_atomic
    from search.sweep import SweepError, SweepSpec, run_sweep

    run_dir = tmp_path / "shared"
    (run_dir / "tune").mkdir(parents=True)
    spec = SweepSpec(data_dir=str(small_data_dir), hidden=(16,), lr=(0.1,), l2=(0.001,), epochs=1)
    write_json_atomic(spec.to_json(), run_dir / "sweep.json")
    for victim in (run_dir, run_dir / "sweep.json", run_dir / "tune"):
        mode = victim.stat().st_mode & 0o777
        victim.chmod(mode | 0o020)
        try:
            with pytest.raises(SweepError, match=rf"--resume: {victim} is writable by group or others"):
                run_sweep(spec, run_dir, resume=True)
        finally:
            victim.chmod(mode)
    if os.getuid() == 0:  # only root can give a file away; CI runs as root
        os.chown(run_dir / "sweep.json", 65534, -1)
        try:
            with pytest.raises(SweepError, match=r"sweep.json is owned by another user \(uid 65534\)"):
                run_sweep(spec, run_dir, resume=True)
        finally:
            os.chown(run_dir / "sweep.json", 0, -1)


def test_too_few_validation_images_are_refused_with_the_counts(tmp_path, small_data_dir):
    from search.sweep import SweepError, SweepSpec, run_sweep

    spec = SweepSpec(data_dir=str(small_data_dir), hidden=(16,), lr=(0.1,), l2=(0.001,), epochs=1,
                     val_fraction=0.001)
    with pytest.raises(SweepError, match=r"--val-fraction: 0.001 holds out 8 of 8000 training images, "
                                         r"fewer than the 10 classes"):
        run_sweep(spec, tmp_path / "few")
    assert not (tmp_path / "few").exists()


def test_retrain_refuses_other_data_than_the_sweeps(run, small_data_dir, tmp_path):
    import shutil

    from helpers import write_idx
    other = tmp_path / "other"
    shutil.copytree(small_data_dir, other)
    X = read_idx_raw(other / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    write_idx(other / "t10k-images-idx3-ubyte.gz", 255 - X, 0x803)  # same shape, other images
    r = cli("retrain", run, "--data-dir", other)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"{other / 't10k-images-idx3-ubyte.gz'}: not the file the sweep trained on" in r.stderr


def test_ctrl_c_before_the_run_folder_exists_says_nothing_was_written(small_data_dir, tmp_path):
    import signal

    from helpers import kill_session, start, wait_for

    def ray_starting() -> bool:  # the driver's first child process: Ray's start, not a fixed sleep
        return bool(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split())

    proc = start(["run", "--data-dir", small_data_dir, "--out", tmp_path, "--name", "early",
                  "--hidden", "16", "--lr", "0.1", "--l2", "0.001", "--epochs", "1"])
    try:
        # Inside its start-up: Ray's processes starting (here ~1 s after launch, 2.5-4 s before
        # the run folder is claimed), whatever the machine's speed.
        wait_for(ray_starting, timeout=120, what="Ray's start")
        assert not (tmp_path / "early").exists(), "the sweep got under way before the signal"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        kill_session(proc.pid)
    assert proc.returncode == 130, err
    assert "Resume with" not in err and "interrupted" in err
    assert not (tmp_path / "early").exists()


def test_an_address_that_is_closed_or_not_ray_fails_fast_in_one_line(small_data_dir, tmp_path):
    import http.server
    import threading
    import time

    from search.localcluster import free_port

    web = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        for address, message in ((f"127.0.0.1:{free_port()}", "nothing answers at"),
                                 (f"127.0.0.1:{web.server_address[1]}", "answers, but not as a Ray cluster")):
            t0 = time.monotonic()
            r = cli("run", "--address", address, "--data-dir", small_data_dir, "--out", tmp_path,
                    "--name", "a", "--hidden", "16", "--lr", "0.1", "--l2", "0.001", timeout=120)
            assert time.monotonic() - t0 < 30
            assert r.returncode == 2, r.stderr
            assert r.stderr.strip().splitlines() == [r.stderr.strip()]  # one line
            assert r.stderr.startswith("run_search.py: error: --address: ") and message in r.stderr
            assert not (tmp_path / "a").exists()
    finally:
        web.shutdown()


def test_evaluate_needs_the_test_files_only(run, small_data_dir, tmp_path):
    import shutil

    only = tmp_path / "t10k"
    only.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(small_data_dir / name, only / name)
    r = cli("evaluate", run / "best", "--data-dir", only)  # the mirrors are dead: nothing is fetched
    assert r.returncode == 0, r.stderr
    assert "test set, 2000 images" in r.stdout
    assert sorted(p.name for p in only.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
