"""results.folder.table and results.model.plots on hand-built frames: summaries, ranking, pivots, edge
advice, atomic writes, and figures with titles, labels and legends."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlp_core.model import init_params
from results.folder import table as T
from results.folder import writer as W
from results.model import plots


def results_frame(rows: list[dict]) -> pd.DataFrame:
    """results.csv as a DataFrame, the way the tables were built with pandas: the reference the
    csv-module writer is checked against."""
    df = pd.DataFrame(rows, columns=T.RESULTS_COLUMNS)
    for c in (T.EPOCHS, T.BEST_EPOCH):  # 10 and 0.25 as such, not 10.0
        df[c] = pd.Series([T.epoch_value(v) for v in df[c]], index=df.index, dtype=object)
    return df.sort_values(T.TRIAL_ID, kind="stable").reset_index(drop=True)


def history_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=T.HISTORY_COLUMNS)
    return df.sort_values([T.TRIAL_ID, "epoch"], kind="stable").reset_index(drop=True)


def hist(trial, accs, losses=None):
    losses = losses or [1.0 / (i + 1) for i in range(len(accs))]
    return pd.DataFrame({"trial_id": trial, "epoch": range(1, len(accs) + 1), "train_loss": losses,
                         "train_accuracy": accs, "val_loss": losses, "val_accuracy": accs,
                         "time_s": 0.5})


def make_results():
    rows = []
    acc = {(64, 0.01, 0.001): 0.90, (64, 0.1, 0.001): 0.95, (128, 0.01, 0.001): 0.91,
           (128, 0.1, 0.001): 0.97, (64, 0.01, 0.01): 0.85, (64, 0.1, 0.01): 0.93,
           (128, 0.01, 0.01): 0.86, (128, 0.1, 0.01): float("nan")}
    for i, ((h, lr, l2), a) in enumerate(acc.items()):
        status = T.Status.DIVERGED if math.isnan(a) else (T.Status.COMPLETED if a > 0.9 else T.Status.STOPPED_EARLY)
        rows.append({"trial_id": f"t{i}", "hidden_size": h, "learning_rate": lr, "l2": l2,
                     "status": status, "epochs": 3 if a > 0.9 else 1, "val_accuracy": a,
                     "val_loss": 1 - a if a == a else float("nan"), "train_loss": 0.1,
                     "train_accuracy": a, "time_s": 1.0, "node_id": "n1", "best_epoch": 1,
                     "blas_threads": 1})
    return results_frame(rows)


def test_summarise_trial_takes_the_best_validation_epoch():
    h = hist("a", [0.5, 0.8, 0.7])
    row = T.summarise_trial("a", {"hidden_size": 64, "learning_rate": 0.1, "l2": 0.0},
                            T.Status.COMPLETED, h.to_dict("records"), "node")
    assert row["val_accuracy"] == 0.8 and row["best_epoch"] == 2 and row["epochs"] == 3
    assert row["time_s"] == pytest.approx(1.5) and row["val_loss"] == pytest.approx(0.5)
    assert list(results_frame([row]).columns) == T.RESULTS_COLUMNS


def test_summarise_diverged_trial():
    h = hist("d", [0.3, float("nan")])
    cfg = {"hidden_size": 8, "learning_rate": 9.0, "l2": 0.0}
    row = T.summarise_trial("d", cfg, T.Status.DIVERGED, h.to_dict("records"), "")
    assert row["val_accuracy"] == 0.3 and row["epochs"] == 2
    h2 = hist("e", [float("nan")])
    row2 = T.summarise_trial("e", cfg, T.Status.DIVERGED, h2.to_dict("records"), "")
    assert math.isnan(row2["val_accuracy"]) and row2["best_epoch"] == 0


def test_summarise_trial_stopped_inside_its_first_epoch():
    partial = pd.DataFrame({"trial_id": "p", "epoch": [0.125, 0.25], "train_loss": [2.0, 1.5],
                            "train_accuracy": [0.2, 0.4], "val_loss": [1.9, 1.4],
                            "val_accuracy": [0.3, 0.5], "time_s": [0.2, 0.45]})
    row = T.summarise_trial("p", {"hidden_size": 8, "learning_rate": 0.1, "l2": 0.0},
                            T.Status.STOPPED_EARLY, [], "n", 1, partial.to_dict("records"))
    assert row["epochs"] == 0.25 and row["best_epoch"] == 0.25 and row["val_accuracy"] == 0.5
    assert row["time_s"] == 0.45  # partial times count from the trial's start: not summed
    # a trial that reached an epoch is summarised from its epochs alone
    row2 = T.summarise_trial("p", {"hidden_size": 8, "learning_rate": 0.1, "l2": 0.0},
                             T.Status.COMPLETED, hist("p", [0.4, 0.45]).to_dict("records"), "n", 1,
                             partial.to_dict("records"))
    assert row2["epochs"] == 2 and row2["val_accuracy"] == 0.45 and row2["time_s"] == 1.0
    text = results_frame([row, row2]).to_csv(index=False).splitlines()
    assert ",stopped_early,0.25," in text[1] and ",completed,2," in text[2]  # 2, not 2.0


def test_ranked_best_and_counts():
    r = make_results()
    top = T.ranked(r)
    assert top.iloc[0]["trial_id"] == "t3" and math.isnan(top.iloc[-1]["val_accuracy"])
    assert T.best_trial(r)["trial_id"] == "t3"
    assert T.ranked(r, "val_loss").iloc[0]["trial_id"] == "t3"
    with pytest.raises(T.RunError, match="no column 'nope'"):
        T.ranked(r, "nope")
    assert T.counts(r) == {"completed": 4, "stopped_early": 3, "diverged": 1, "error": 0}


def test_pivot():
    p = T.pivot(make_results())
    assert sorted(p) == [64, 128]
    assert p[64].loc[0.1, 0.001] == 0.95 and p[128].loc[0.01, 0.01] == 0.86
    assert math.isnan(p[128].loc[0.1, 0.01])


def test_edge_advice():
    r = make_results()  # best: hidden 128 (largest), lr 0.1 (largest), l2 0.001 (smallest)
    notes = T.edge_advice(r)
    assert len(notes) == 3
    assert any("hidden_size (128) is the largest" in n and "--hidden upward (e.g. 256)" in n for n in notes)
    assert any("learning_rate (0.1) is the largest" in n and "--lr upward (e.g. 1)" in n for n in notes)
    assert any("l2 (0.001) is the smallest" in n and "--l2 downward (e.g. 0.0001)" in n for n in notes)
    # surround the best on every axis: nothing to say
    sweep = {"hidden": [64, 128, 256], "lr": [0.01, 0.1, 1.0], "l2": [0.0, 0.001, 0.01]}  # sweep.json
    assert T.edge_advice(r, sweep) == []


def test_atomic_csv_write(tmp_path):
    df = make_results()
    W.write_frame(df, tmp_path / "results.csv")
    back = T.load_results(tmp_path)
    assert list(back.columns) == T.RESULTS_COLUMNS and len(back) == len(df)
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]
    assert (tmp_path / "results.csv").read_text() == df.to_csv(index=False)  # pandas' bytes
    seeds = pd.DataFrame([{"seed": 0, "best_epoch": 9, "val_accuracy": 0.8956, "test_loss": 1 / 3},
                          {"seed": 1, "best_epoch": 10, "val_accuracy": np.float32(0.9), "test_loss": math.nan}])
    W.write_frame(seeds, tmp_path / "seeds.csv")
    assert (tmp_path / "seeds.csv").read_text() == seeds.to_csv(index=False)


def test_bad_run_folder_errors(tmp_path):
    with pytest.raises(T.RunError, match="results.csv: not found"):
        T.load_results(tmp_path)
    (tmp_path / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(T.RunError, match="missing column"):
        T.load_results(tmp_path)
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(T.RunError, match="not valid JSON"):
        T.load_sweep(tmp_path)


# --- figures --------------------------------------------------------------------------------------
def _texts(fig):
    ax = fig.axes[0]
    return ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), ax.get_legend()


def test_learning_curve_figures(tmp_path):
    h = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1, .5, .4], "val_loss": [1.1, .6, .5],
                      "test_loss": [1.2, .7, .6], "train_accuracy": [.7, .8, .9],
                      "val_accuracy": [.6, .7, .8], "test_accuracy": [.6, .7, .75]})
    for fig in (plots.plot_loss(h), plots.plot_accuracy(h)):
        title, xl, yl, legend = _texts(fig)
        assert title and xl == "epoch" and yl and legend is not None
        assert [t.get_text() for t in legend.get_texts()] == ["train", "validation", "test"]
        line = fig.axes[0].get_lines()[2]
        np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
    path = plots.save_figure(plots.plot_loss(h), tmp_path / "loss.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_weight_histograms():
    p = init_params(32, np.random.default_rng(0))
    fig = plots.plot_weights(p, 1)
    assert [ax.get_title() for ax in fig.axes] == ["W1: weights", "b1: biases"]
    counts = sum(patch.get_height() for patch in fig.axes[0].patches)
    assert counts == 784 * 32
    assert fig.axes[0].get_legend() is not None


def test_search_heatmap_writes_values_in_cells():
    fig = plots.plot_search_heatmap(make_results())
    panels = [ax for ax in fig.axes if ax.get_title().startswith("hidden_size")]
    assert [ax.get_title() for ax in panels] == ["hidden_size = 64", "hidden_size = 128"]
    texts = {t.get_text().split("\n")[0] for t in panels[1].texts}
    assert {"91.0", "97.0", "86.0"} <= texts
    assert any(t.get_text() == "diverged" for t in panels[1].texts)
    # A trial stopped early says how far it ran, and its cell is hatched: its value is the
    # accuracy at that point, not after the full budget (the caption says so).
    results = make_results()
    early = results[results["status"] == "stopped_early"]
    labels = [t.get_text() for ax in panels for t in ax.texts if "ep" in t.get_text()]
    assert len(labels) == len(early) and all(t.endswith(" ep") for t in labels)
    hatched = [p for ax in panels for p in ax.patches if p.get_hatch()]
    assert len(hatched) == len(early)
    assert "at the point each trial reached" in fig._suptitle.get_text()


def test_a_heatmap_of_a_large_grid_stays_a_picture():
    """50 learning rates x 50 L2 values: colour alone, the best cell framed, a figure a screen
    shows (with values in 2,500 cells a panel it was 85 inches wide and took half a GB)."""
    lrs, l2s = np.geomspace(1e-3, 0.5, 50), np.geomspace(1e-5, 0.1, 50)
    rows = [{"trial_id": f"t{i}", "hidden_size": h, "learning_rate": lr, "l2": l2, "status": "completed",
             "epochs": 2, "val_accuracy": 0.5 + 0.4 * lr - l2 + (0.01 if h == 32 else 0.0), "val_loss": 0.5,
             "train_loss": 0.5, "train_accuracy": 0.5, "time_s": 1.0, "node_id": "n", "best_epoch": 2,
             "blas_threads": 1}
            for i, (h, lr, l2) in enumerate((h, lr, l2) for h in (16, 32) for lr in lrs for l2 in l2s)]
    fig = plots.plot_search_heatmap(results_frame(rows))
    panels = [ax for ax in fig.axes if ax.get_title().startswith("hidden_size")]
    assert all(not ax.texts for ax in panels)
    width, height = fig.get_size_inches()
    assert width <= 16 and height <= 8
    framed = [p for ax in panels for p in ax.patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
    assert len(framed) == 1 and framed[0].axes is panels[1]  # hidden 32, the largest lr, the smallest l2
    assert framed[0].get_xy() == (-0.5, 48.5)
    assert len(panels[0].get_xticks()) <= 13 and len(panels[0].get_yticks()) <= 20


def test_search_curves_mark_early_stops():
    r = make_results()
    h = pd.concat([hist(t, [0.5, 0.9, 0.95][:e]) for t, e in zip(r["trial_id"], r["epochs"], strict=False)])
    fig = plots.plot_search_curves(h, r, epochs=3)
    ax = fig.axes[0]
    assert "3 stopped early" in ax.get_title()
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x" and len(line.get_xdata())]
    assert len(crosses) == 3
    assert "stopped early" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_search_curves_show_trials_stopped_inside_the_first_epoch():
    r = make_results()
    stopped = r["status"] == T.Status.STOPPED_EARLY
    r.loc[stopped, "epochs"] = 0.25
    quarter = pd.DataFrame({"trial_id": r["trial_id"], "epoch": 0.25, "val_accuracy": 0.4})
    h = pd.concat([quarter] + [hist(t, [0.5, 0.9, 0.95][:e]) for t, e
                               in zip(r["trial_id"], r["epochs"], strict=False) if e >= 1])
    ax = plots.plot_search_curves(h, r, epochs=3).axes[0]
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x" and len(line.get_xdata())]
    assert len(crosses) == int(stopped.sum()) == 3
    assert all(list(line.get_xdata()) == [0.25] for line in crosses)
    assert ax.get_xlim()[0] < 0.25


def test_tables_written_without_pandas_are_the_files_pandas_writes(tmp_path):
    """The recorder writes its tables with the csv module (pandas cost ~15 ms of Tune's control
    loop per finished trial); the bytes are those of the DataFrame path it replaced."""
    import numpy as np

    nan = float("nan")
    hist = [  # out of order, live-report types and types read back from a CSV, a diverged epoch
        {"trial_id": "b", "epoch": 2, "train_loss": 0.5, "train_accuracy": 0.8, "val_loss": 0.55,
         "val_accuracy": np.float64(0.81), "time_s": 1.25, "ended_at": 1795723033.532115},
        {"trial_id": "b", "epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 0.9,
         "val_accuracy": 0.6, "time_s": 1.5, "ended_at": 1795723032.25},
        {"trial_id": "a", "epoch": np.int64(1), "train_loss": nan, "train_accuracy": 0.1,
         "val_loss": nan, "val_accuracy": nan, "time_s": 0.1, "ended_at": 1e9},
    ]
    history_frame(hist).to_csv(tmp_path / "old.csv", index=False)  # pandas: the reference
    W.write_history(hist, tmp_path / "new.csv")
    assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "old.csv").read_bytes()

    partial = [dict(hist[1], epoch=0.25), dict(hist[2], epoch=0.5), dict(hist[2], epoch=0.125)]
    history_frame(partial).to_csv(tmp_path / "old.csv", index=False)
    W.write_history(partial, tmp_path / "new.csv")
    assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "old.csv").read_bytes()

    cfg = {"hidden_size": 64, "learning_rate": 1e-05, "l2": 0.0}
    rows = [{"trial_id": "t2", **cfg, "status": "completed", "epochs": 10.0, "val_accuracy": 0.9,
             "val_loss": 0.3, "train_loss": 0.25, "train_accuracy": 0.95, "time_s": 12.5,
             "node_id": 'node "x", rack 1', "best_epoch": 9, "blas_threads": 1},
            {"trial_id": "t1", **cfg, "status": "stopped_early", "epochs": 0.25,
             "val_accuracy": 0.2, "val_loss": 2.0, "train_loss": 2.1, "train_accuracy": 0.15,
             "time_s": 0.5, "node_id": "", "best_epoch": 0.25, "blas_threads": 2,
             "stopped_at_rung": 0.25},
            {"trial_id": "t3", **cfg, "status": "diverged", "epochs": 3, "val_accuracy": nan,
             "val_loss": nan, "train_loss": nan, "train_accuracy": nan, "time_s": 3.0,
             "node_id": "n", "best_epoch": 3, "blas_threads": 1}]
    results_frame(rows).to_csv(tmp_path / "old.csv", index=False)
    W.write_results(rows, tmp_path / "new.csv")
    assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "old.csv").read_bytes()
    text = (tmp_path / "new.csv").read_text().splitlines()
    assert text[0] == ",".join(T.RESULTS_COLUMNS) and [t.split(",")[0] for t in text[1:]] == ["t1", "t2", "t3"]
    assert ',stopped_early,0.25,' in text[1] and ',completed,10,' in text[2]

    # Where they differ, on purpose: an integer column with a missing value (an errored trial
    # never reported its BLAS threads) stays integers, where pandas made every value 1.0.
    errored = dict(rows[2], trial_id="t4", status="error", blas_threads=None)
    W.write_results([rows[0], errored], tmp_path / "new.csv")
    import csv
    with open(tmp_path / "new.csv", newline="") as f:
        assert [row["blas_threads"] for row in csv.DictReader(f)] == ["1", ""]
