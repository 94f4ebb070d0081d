"""The Python API (search.api, results.run): the README's "From Python" example run as written,
the command line's checks on every setting, a run folder read back as DataFrames, and progress
that updates in place in a notebook cell."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import pytest

from helpers import ROOT, write_small_mnist
from results.folder.table import RunError
from results.run import Run
from search import api
from search.sweep import SweepError


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path):
    """In a fresh folder, with the data cache holding the tests' small MNIST split (as a user's
    cache holds the downloaded MNIST), the example's code runs unchanged."""
    write_small_mnist(tmp_path / "cache" / "mnist")
    code = readme_example() + (
        "\nassert len(run.results) == 8 and run.results['val_accuracy'].iloc[0] > 0.8\n"
        "assert list(run.rungs()['rung']) == [0.25, 1, 2]\n"
        "assert run.importance()['share'].sum() > 0.999\n"
        "assert params.W1.shape == (784, run.best['hidden_size'])\n"
        "assert len(again.history) == len(run.history)\n"
        "print('example ok')\n")
    env = {**os.environ, "MLP_SWEEP_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "example ok" in r.stdout
    assert (tmp_path / "runs" / "first-sweep" / "report.html").is_file()
    assert "\r" not in r.stderr  # not a terminal: whole lines, no carriage returns


@pytest.mark.slow
def test_the_readme_example_in_a_real_jupyter_kernel(tmp_path, monkeypatch):
    """The README's "From Python" cell run by nbclient in an ipykernel, as a notebook runs it:
    the progress line is one display updated in place (no progress text lines beside it, and
    nothing of Ray Tune's own in the cell), then the results frame and the rung table."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    write_small_mnist(tmp_path / "cache" / "mnist")
    monkeypatch.setenv("MLP_SWEEP_CACHE", str(tmp_path / "cache"))
    cells = [readme_example(), "run.results.head()", "run.rungs()"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    updates = []
    process = client.process_message

    def spy(msg, cell, index):  # every message, before the cell's outputs fold updates in
        if msg["msg_type"] == "update_display_data":
            updates.append(msg["content"]["data"]["text/plain"])
        return process(msg, cell, index)

    client.process_message = spy
    client.execute()
    outputs = nb.cells[0].outputs
    assert all(o.output_type != "error" for c in nb.cells for o in c.outputs)
    displays = [o for o in outputs if o.output_type == "display_data"]
    assert len(displays) == 1, outputs  # ours alone: Tune's reporter shows nothing
    line = displays[0].data["text/plain"]
    assert line.startswith("trials 8/8 done") and "best val_accuracy" in line and "paused" not in line
    assert updates and all(u.startswith("trials ") for u in updates) and updates[-1] == line
    text = "".join(o.text for o in outputs if o.output_type == "stream")
    assert " done, " not in text and "\r" not in text  # the progress line only as the display
    assert text.count("sweep finished in") == 1 and "ipywidgets" not in text
    frame = nb.cells[1].outputs[0].data
    assert "text/html" in frame and "val_accuracy" in frame["text/plain"]
    rungs = nb.cells[2].outputs[0].data["text/plain"]
    assert rungs.split("\n")[0].split() == ["rung", "entered", "went_on", "stopped", "cutoff"]
    assert (tmp_path / "runs" / "first-sweep" / "best" / "model.onnx").is_file()


@pytest.mark.parametrize("values, message", [
    ({"lr": [0, 0.1]}, "--lr: 0 must be positive"),
    ({"hidden": [64, 64.5]}, "--hidden: 64,64.5 must be whole numbers"),
    ({"l2": "0.1"}, "--l2: '0.1' is not a list of numbers"),
    ({"epochs": 0}, "--epochs: 0 must be a positive integer"),
    ({"momentum": 1}, r"--momentum: 1 must be in \[0, 1\)"),
    ({"val_fraction": 1.5}, "--val-fraction: 1.5 must be between 0 and 1"),
    ({"scheduler": "fast"}, "--scheduler: 'fast'; choose halving, asha, none"),
    ({"learning_rate": [0.1]}, "unknown setting"),
])
def test_every_setting_is_checked_as_the_command_line_checks_it(values, message, tmp_path):
    with pytest.raises(SweepError, match=message):
        api.settings(tmp_path, "x", **values)
    assert not (tmp_path / "x").exists()


def test_settings_take_numpy_values_and_a_resume_must_match(tmp_path):
    import numpy as np

    from results.folder.table import write_json_atomic

    spec, run_dir = api.settings(tmp_path, "n", hidden=np.array([16, 32]), lr=[np.float64(0.1)])
    assert spec.hidden == (16, 32) and type(spec.hidden[0]) is int and spec.lr == (0.1,)
    assert run_dir == tmp_path / "n"
    run_dir.mkdir()
    write_json_atomic(spec.to_json(), run_dir / "sweep.json")
    again, _ = api.settings(tmp_path, "n", resume=True, max_concurrent=1)
    assert again.hidden == (16, 32) and again.max_concurrent == 1
    with pytest.raises(SweepError, match=r"--epochs: 3 differs from the sweep being resumed \(10\)"):
        api.settings(tmp_path, "n", resume=True, epochs=3)
    with pytest.raises(SweepError, match="--resume needs --name"):
        api.settings(tmp_path, resume=True)


def test_a_folder_that_is_no_run_is_named(tmp_path):
    with pytest.raises(RunError, match=f"{tmp_path}: not a run folder"):
        Run(tmp_path)


def test_progress_in_a_notebook_updates_one_display_in_place():
    from search.progress import Progress

    class Handle:
        def __init__(self):
            self.texts = []

        def update(self, text):
            self.texts.append(text)

    recorder = SimpleNamespace(rows={}, counts=Counter(), best=None, run_dir="/nowhere")
    handle, stream = Handle(), io.StringIO()
    progress = Progress(recorder, 4, stream=stream, display=handle)
    progress.on_trial_start(0, [], SimpleNamespace(trial_id="a"))
    progress.on_step_begin(0, [])  # the first update is shown at once
    recorder.rows["a"] = {"status": "completed"}
    recorder.counts["completed"] += 1
    progress.on_trial_complete(0, [], SimpleNamespace(trial_id="a"))
    progress.on_experiment_end([])
    assert handle.texts[0].startswith("trials 0/4 done, 1 running")
    assert handle.texts[-1].startswith("trials 1/4 done")
    assert stream.getvalue() == ""  # nothing written around it, no carriage returns
