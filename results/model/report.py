"""report.html: one self-contained page (images embedded) with the run's summary, the top trials,
the grid-edge advice and every plot, readable offline.

Leaves out drawing the plots (plots.py) and computing the table (table.py).
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from mlp_core.files import atomic_write

from ..columns import BEST_DIR, MODEL_JSON, PLOTS_DIR
from ..folder import table as T
from ..sweep import halving
from ..sweep.settings import AXES, FROM_FILE, shown_value
from ..views import effects, rounds
from ..views.notes import edge_notes, failed_note
from ..views.rungs import rungs_frame
from .load import read_model_json

PLOT_CAPTIONS = [
    ("search_effects.png", "Each hyperparameter's effect: every trial at the furthest point all "
                           "reached, the best per value joined"),
    ("search_importance.png", "Share of the variance of that accuracy explained by each "
                              "hyperparameter and each pair"),
    ("search_curves.png", "Validation accuracy of every trial per epoch (× = stopped early)"),
    ("search_heatmap.png", "Best validation accuracy over learning rate × L2, per hidden size"),
    ("loss.png", "Retrained best configuration: loss per epoch"),
    ("accuracy.png", "Retrained best configuration: accuracy per epoch"),
    ("weights_fc1.png", "Retrained model, first layer: weights and biases"),
    ("weights_fc2.png", "Retrained model, second layer: weights and biases"),
]


TOP_COLUMNS = [T.TRIAL_ID, *T.HYPERPARAMETERS, T.STATUS, T.EPOCHS, T.BEST_EPOCH, "val_accuracy",
               "val_loss", "train_accuracy", "time_s", T.NODE_ID]
# drawn for the page's full width; the others sit two to a row
WIDE_PLOTS = ("search_effects.png", "search_heatmap.png")


def esc(value) -> str:
    """Any value as HTML text: whatever a file held, it is shown, never run."""
    return html.escape(str(value))


def num(value, spec: str) -> str:
    """A number formatted by `spec`; anything else (a hand-edited file) shown escaped as it is."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    try:
        return format(float(value), spec) if isinstance(value, str) and value.strip() else esc(value)
    except ValueError:
        return esc(value)


STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
         "table.trials{border-collapse:collapse;font-size:0.85em}"
         "table.trials td,table.trials th{padding:3px 6px;border-bottom:1px solid #ddd;text-align:right}"
         ".scroll{overflow-x:auto}"
         ".plots{display:flex;flex-wrap:wrap;gap:1em}"
         "figure{margin:0;flex:1 1 520px;max-width:100%}figure.wide{flex-basis:100%}"
         "img{max-width:100%;height:auto}figcaption{color:#555;font-size:0.9em}")


def write_report(run_dir: str | Path, top: int = 10) -> Path:
    """report.html in run_dir, from the run's files: written atomically, every value escaped."""
    run_dir = Path(run_dir)
    sweep = T.load_sweep(run_dir)
    results = T.load_results(run_dir)
    history, partial = T.load_history(run_dir), T.load_partial(run_dir)
    parts = [f"<h1>Sweep {esc(run_dir.name)}</h1>", *summary_html(run_dir, sweep, results)]
    failed = results[results[T.STATUS] == T.Status.ERROR]
    if len(failed):
        parts.append(f"<h2>Failed trials</h2><p>{esc(failed_note(len(failed)))}</p>")
        parts.append(failed[[T.TRIAL_ID, *T.HYPERPARAMETERS, T.EPOCHS]].to_html(
            index=False, float_format=lambda v: f"{v:g}", border=0, classes="trials", na_rep=""))
    if rounds.extends(sweep):
        parts.append("<h2>Rounds of --extend-edges</h2><p>Round 0 is the grid given; each later "
                     "round added the value beyond each edge the best sat on and searched the new "
                     "points of the full grid with the same early stopping.</p>")
        parts.append(rounds.rounds_frame(run_dir, results).to_html(
            index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="trials", na_rep=""))
    advice = edge_notes(run_dir, sweep, results)
    if advice:
        parts.append("<h2>Grid edge</h2><ul>" + "".join(f"<li>{esc(a)}</li>" for a in advice) + "</ul>")
    if halving.sweep_rungs(sweep):
        parts.append(f"<h2>Early stopping ({esc(sweep['scheduler'])})</h2>"
                     "<p>Per rung (in epochs): the trials that competed there, how many went on, "
                     "how many stopped there, and the lowest validation accuracy that went on"
                     + (", in the grid given (round 0)" if rounds.extends(sweep) else "") + ".</p>")
        parts.append(rungs_frame(run_dir, sweep, results, history, partial).to_html(
            index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="trials", na_rep=""))
    point, shares = effects.importance_at_common_point(results, history, partial)
    if shares is not None:
        parts.append(f"<h2>What mattered</h2><p>Share of the variance of validation accuracy at "
                     f"epoch {point:g}, the furthest point every trial reached (so stopped and "
                     f"completed trials compare fairly; a diverged trial counts at chance, 10%), "
                     f"explained by each hyperparameter and each pair: an exact decomposition of "
                     f"the full grid.</p>")
        parts.append(effects.in_percent(shares).to_html(index=False, border=0, classes="trials"))
    parts.append(f"<h2>Top {top} trials</h2><p>The columns that fit a laptop's screen; "
                 f"<code>{esc(T.RESULTS_FILE)}</code> has them all.</p>")
    shown = T.ranked(results).head(top)[TOP_COLUMNS].copy()
    shown[T.NODE_ID] = shown[T.NODE_ID].astype(str).str[:8]  # 56 hex digits; 8 tell nodes apart
    parts.append('<div class="scroll">' + shown.to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                                         border=0, classes="trials", na_rep="")
                 + "</div>")
    parts.append(plots_html(run_dir))
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sweep {esc(run_dir.name)}</title>"
           f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    out = run_dir / "report.html"
    with atomic_write(out, "w", encoding="utf-8") as f:
        f.write(doc)
    return out


def summary_html(run_dir: Path, sweep: dict, results) -> list[str]:
    """The summary list: settings, grid, trial counts, the best trial, the exported model."""
    counts = T.counts(results)
    best = T.best_trial(results)
    parts = ["<h2>Summary</h2><ul>",
             f"<li>dataset: {esc(data_name(sweep))}; epochs ≤ {esc(sweep['epochs'])}, "
             f"batch {esc(sweep['batch_size'])}, scheduler {esc(sweep['scheduler'])}, "
             f"seed {esc(sweep['seed'])}</li>",
             *data_html(sweep.get("data_facts")),
             "<li>grid: " + ", ".join(f"{s.column} {esc(shown_value(sweep[s.name]))}" for s in AXES) + "</li>",
             *(["<li>after the rounds of --extend-edges: " + ", ".join(
                 f"{s.column} {esc(shown_value(sorted(results[s.column].unique().tolist())))}" for s in AXES)
                + "</li>"] if rounds.extends(sweep) else []),
             f"<li>trials: {len(results)} ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
             f"trial-epochs run: {float(results[T.EPOCHS].astype(float).sum()):g}</li>",
             f"<li>best: trial {esc(best[T.TRIAL_ID])}, hidden_size {esc(best[T.HIDDEN_SIZE])}, "
             f"learning_rate {num(best[T.LEARNING_RATE], 'g')}, l2 {num(best[T.L2], 'g')}: "
             f"val_accuracy {num(best['val_accuracy'], '.4f')}</li>"]
    model_json = run_dir / BEST_DIR / MODEL_JSON
    if model_json.exists():
        meta = read_model_json(model_json)
        dataset = data_name(sweep)
        parts.append(f"<li>exported model, trial {esc(meta.get('trial_id'))} ({esc(dataset)}): "
                     f"test_accuracy {num(meta.get('test_accuracy'), '.4f')}, "
                     f"test_loss {num(meta.get('test_loss'), '.4f')} (best epoch "
                     f"{esc(meta.get('best_epoch'))}); files in <code>{esc(BEST_DIR)}/</code></li>")
    return parts + ["</ul>"]


def data_name(sweep: dict) -> str:
    """The data as a short name: MNIST's or a bundled set's, or the file's."""
    return Path(sweep["data"]).name if sweep["dataset"] == FROM_FILE and sweep.get("data") else sweep["dataset"]


def data_html(facts: dict | None) -> list[str]:
    """The data in one line: where it came from, rows per split, features, classes and balance."""
    if not facts:
        return []
    rows = facts["rows"]
    counts = facts["class_counts"]
    total = sum(counts.values()) or 1
    shown = list(counts.items())
    balance = ", ".join(f"{esc(c)} {100 * n / total:.0f}%" for c, n in shown[:12])
    more = f", and {len(shown) - 12} more" if len(shown) > 12 else ""
    of = (f"images of {facts['features']} pixels" if facts["scaling"] == "pixels"
          else f"rows of {facts['features']} features ({esc(facts['scaling'])})")
    return [f"<li>data: {esc(facts['source'])}: {rows['train']} training, {rows['validation']} validation "
            f"and {rows['test']} test {of}; {len(counts)} classes: {balance}{more}</li>"]


def plots_html(run_dir: Path) -> str:
    """Every plot the run has, embedded, two to a row (the wide ones a row each)."""
    parts = ['<h2>Plots</h2><div class="plots">']
    for name, caption in PLOT_CAPTIONS:
        png = run_dir / PLOTS_DIR / name
        if png.exists():
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            wide = ' class="wide"' if name in WIDE_PLOTS else ""
            parts.append(f'<figure{wide}><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{esc(caption)}</figcaption></figure>")
    return "".join(parts) + "</div>"
