#!/usr/bin/env python3
"""Command line: run a sweep, retrain its best configuration, show its table, use its model.

A thin layer over search/ (the sweep), results/ (tables, plots, export) and mlp_core/ (data).
Ray is imported only by `run`, so the other commands start fast and work without a cluster.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from results.columns import SWEEP_FILE  # (imports nothing: the commands still start fast)

# How the user called it: the installed `mlp-sweep`, or `python run_search.py`. Help, errors and
# the commands it suggests (resume, run again) use that name.
INSTALLED = "mlp-sweep"
PROG = INSTALLED if Path(sys.argv[0]).name == INSTALLED else "run_search.py"
COMMAND = INSTALLED if PROG == INSTALLED else "python run_search.py"

EXIT_USAGE = 2  # a bad flag or value
EXIT_FAILURE = 1  # a bad file, or a failure while working
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process that SIGTERM ended


class Stops:
    """SIGTERM (what Slurm, Kubernetes, systemd, docker stop and timeout send first) handled as
    Ctrl-C: it calls whatever handles SIGINT at that moment (Tune's graceful stop while the
    sweep runs, KeyboardInterrupt elsewhere), and the exit code then says which signal it was."""

    def __init__(self):
        self.terminated = False
        # (a run folder, the command that resumes it) while a sweep runs: said at once on SIGTERM,
        # for when the same SIGTERM also ends Ray's own processes (a whole process group, as
        # Slurm's scancel signals a job) and the driver dies with them before it can say more
        self.resumable: tuple[Path, str] | None = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame):
        if not self.terminated and self.resumable and (self.resumable[0] / SWEEP_FILE).is_file():
            print(f"\nterminated (SIGTERM): stopping the sweep. Resume with:\n  {self.resumable[1]}",
                  file=sys.stderr, flush=True)
        self.terminated = True
        handler = signal.getsignal(signal.SIGINT)
        if not callable(handler):  # SIGINT ignored or default: still a stop
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    @property
    def code(self) -> int:
        return EXIT_TERMINATED if self.terminated else EXIT_INTERRUPTED

    @property
    def what(self) -> str:
        return "terminated (SIGTERM)" if self.terminated else "interrupted"



class CliError(Exception):
    """A user-facing error: printed as one line, exit code `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILURE):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise CliError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


# --- value checks, run before anything starts ----------------------------------------------------
def _setting_type(parse):
    """An argparse type from a setting's parser (its ValueError says why the text is refused)."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return convert


def build_parser() -> Parser:
    from results.sweep import settings  # no Ray: the declarations and the grid's parsers

    positive_int = _setting_type(settings.whole(lambda v: v >= 1, "must be a positive integer").parse)
    p = Parser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", parser_class=Parser)

    r = sub.add_parser("run", help="run a sweep (the default command), then retrain, plot and export")
    r.add_argument("--out", default="runs", help="folder of run folders (default: runs)")
    r.add_argument("--name", help="run folder name under --out (default: sweep-<date>-<time>)")
    for setting in settings.SETTINGS:  # every setting of the sweep, as declared there
        kind = setting.kind
        r.add_argument(setting.flag, type=_setting_type(kind.parse), choices=kind.choices or None,
                       default=None, help=setting.help_text())
    r.add_argument("--resume", action="store_true", help="continue the interrupted sweep OUT/NAME")
    r.add_argument("--no-retrain", action="store_true", help="skip retraining, plots of the best and export")
    r.add_argument("-v", "--verbose", action="store_true", help="show Ray's own output")
    r.add_argument("--mlflow", nargs="?", const=True, default=None, metavar="URI",
                   help="log the sweep to MLflow as it runs: one parent run, one nested run per trial, the "
                        "model (default URI: $MLFLOW_TRACKING_URI, else MLflow's sqlite:///mlflow.db here)")
    r.add_argument("--tensorboard", action="store_true",
                   help="write TensorBoard event files under RUN/tensorboard (scalars and HParams)")

    t = sub.add_parser("retrain", help="retrain a run's best (or chosen) configuration and export it")
    t.add_argument("run_dir")
    t.add_argument("--trial", help="trial id to retrain (default: best validation accuracy)")
    t.add_argument("--seeds", type=positive_int, default=1,
                   help="retrain with this many seeds and report mean ± std of test accuracy")
    t.add_argument("--data-dir", "--data", dest="data_dir",
                   help="where the dataset (its IDX folder, or your data file) is now, if it moved")

    s = sub.add_parser("show", help="the top trials of a run, or a pivot")
    s.add_argument("run_dir")
    s.add_argument("--top", type=positive_int, default=10)
    s.add_argument("--sort", default="val_accuracy", help="column to rank by (default: val_accuracy)")
    s.add_argument("--pivot", action="store_true", help="best val_accuracy over learning_rate x l2 per hidden_size")
    s.add_argument("--rungs", action="store_true",
                   help="per rung of early stopping: trials that entered, went on, were stopped, and the cutoff")
    s.add_argument("--format", choices=["text", "csv", "markdown", "json"], default="text")

    m = sub.add_parser("mlflow", help="log a run folder to MLflow, as --mlflow would have (again: no copies)")
    m.add_argument("run_dir")
    m.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's sqlite:///mlflow.db here)")

    e = sub.add_parser("evaluate", help="test-set accuracy, per-class accuracy and confusion matrix of a model")
    e.add_argument("model_dir")
    e.add_argument("--data-dir", help="folder with the dataset's IDX files")
    e.add_argument("--dataset", choices=settings.BY_NAME["dataset"].kind.choices,
                   help="default: the dataset named in model.json")
    e.add_argument("--data", help="a model of your own data: where its run's data file is now, if it moved")

    d = sub.add_parser("predict", help="the class and its probability for 28x28 images (PNG or .npy), "
                                       "or for each row of a CSV or .npy of features (a model of your own data)")
    d.add_argument("model_dir")
    d.add_argument("files", nargs="+")
    d.add_argument("--out", help="a model of your own data: write the predictions to this CSV "
                                 "(file, row, index, class, probability)")
    return p


# --- commands ------------------------------------------------------------------------------------
def cmd_run(args) -> int:
    """`run`: search.api.run, as a notebook calls it, with the command line's messages."""
    from mlp_core.files import DiskFull
    from mlp_core.tabular import BadData
    from results.folder.runfolder import default_name
    from search import api

    name = args.name if args.name or args.resume else default_name()  # a resume names its folder
    run_dir = Path(args.out) / (name or "")
    resume_cmd = (f"{COMMAND} run --out {args.out} --name {name} --resume"
                  + (f" --address {args.address}" if args.address else ""))
    values = {k: getattr(args, k) for k in (*api.DEFAULTS, *api.PLACEMENT)}
    args.stops.resumable = (run_dir, resume_cmd)
    try:
        run = api.run(args.out, name, args.resume, retrain=not args.no_retrain, verbose=args.verbose,
                      log=lambda m: print(m, file=sys.stderr), mlflow=args.mlflow,
                      tensorboard=args.tensorboard, **values)
    except (api.SweepError, BadData) as e:  # a bad setting, or data that cannot be swept as it is
        raise CliError(str(e), EXIT_USAGE) from None
    except DiskFull as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        print(f"what was finished is in {run_dir}; free some space, then resume with:\n  {resume_cmd}",
              file=sys.stderr)
        return EXIT_FAILURE
    except api.SweepStalled as e:
        print(f"\n{PROG}: error: {e}", file=sys.stderr)
        print(f"what was finished is in {run_dir}; resume with:\n  {resume_cmd}", file=sys.stderr)
        return EXIT_FAILURE
    except (api.SweepInterrupted, KeyboardInterrupt) as e:
        if not (run_dir / SWEEP_FILE).is_file():  # stopped before the run folder was written
            print(f"\n{args.stops.what} before the sweep started: nothing was written", file=sys.stderr)
        else:
            said = f": {e}" if isinstance(e, api.SweepInterrupted) else f"; results so far are in {run_dir}"
            again = "" if args.stops.terminated else f" Resume with:\n  {resume_cmd}"  # (said at the SIGTERM)
            print(f"\n{args.stops.what}{said}.{again}", file=sys.stderr)
        return args.stops.code
    print_findings(run)
    return 0


def print_findings(run) -> None:
    """What a finished run found: the top trials, its notes, the exported model, the report."""
    from results.folder import table as T
    from results.views.notes import edge_notes, failed_note

    results = run.results
    print(format_table(results.head(5), "text"))
    failed = int((results[T.STATUS] == T.Status.ERROR).sum())
    if failed:
        print("note: " + failed_note(failed))
    print_rounds(run.path, run.settings, results, "text")
    for note in edge_notes(run.path, run.settings, results):
        print("note: " + note)
    if run.exported is not None:
        print(run.exported.summary())
    print(f"report: {run.report}")


def cmd_retrain(args) -> int:
    from results.model.plot_process import PlotProcess
    from results.run import finish

    # the search plots are drawn in a second process while this one trains (with the trial's
    # BLAS threads, one by default: the other core is free)
    with PlotProcess() as plots:
        report, outcome = finish(args.run_dir, trial=args.trial, seeds=args.seeds, data_dir=args.data_dir,
                                 log=lambda m: print(m, file=sys.stderr), plots=plots)
    print(outcome.summary())
    print(f"report: {report}")
    return 0


def format_table(df, fmt: str, decimals: int | None = None) -> str:
    """df as text, CSV, Markdown or JSON; on screen, floats to 4 significant digits, or to
    `decimals` places (a table of one quantity: every cell with the same number of decimals)."""
    if fmt == "csv":
        return df.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return df.to_json(orient="records", indent=2)
    shown = df.copy()
    if "node_id" in shown:  # 56 hex digits; the first 8 tell nodes apart on screen
        shown["node_id"] = shown["node_id"].astype(str).str[:8]
    for c in shown.columns:
        if shown[c].dtype.kind == "f":
            shown[c] = shown[c].map(lambda v: "" if v != v else f"{v:.{decimals}f}" if decimals is not None
                                    else f"{v:.4g}")
    if fmt == "markdown":
        cols = [str(c) for c in shown.columns]
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
        return "\n".join(lines)
    return shown.to_string(index=False)


def cmd_show(args) -> int:
    from results.folder import table as T

    results = T.load_results(args.run_dir)
    sweep = T.load_sweep(args.run_dir)
    if results.empty:
        raise CliError(f"{args.run_dir}: no finished trials yet ({T.RESULTS_FILE} has none); "
                       f"resume the sweep or wait for it")
    if args.rungs:
        from results.sweep.halving import sweep_rungs
        from results.views.rungs import rungs_frame
        if not sweep_rungs(sweep):
            raise CliError(f"{args.run_dir}: this sweep ran without early stopping (scheduler "
                           f"{sweep.get('scheduler')}): it has no rungs")
        summary = rungs_frame(args.run_dir, sweep, results, T.load_history(args.run_dir),
                              T.load_partial(args.run_dir))
        print(format_table(summary, args.format))
        return 0
    if args.pivot:
        tables = T.pivot(results)
        if args.format == "json":
            print(json.dumps({str(h): {f"{lr:g}": {f"{l2:g}": (None if v != v else v) for l2, v in row.items()}
                                       for lr, row in t.iterrows()} for h, t in tables.items()}, indent=2))
        else:
            for h, t in tables.items():
                t = t.reset_index()
                # as the grid gives it, not to 4 decimals
                t[T.LEARNING_RATE] = t[T.LEARNING_RATE].map(lambda v: f"{v:g}")
                t.columns = ["learning_rate \\ l2"] + [f"{c:g}" for c in t.columns[1:]]
                print(f"hidden_size = {h}: best val_accuracy")
                print(format_table(t, args.format, decimals=4))
                print()
    else:
        try:
            top = T.ranked(results, args.sort).head(args.top)
        except T.RunError as e:
            raise CliError(str(e), EXIT_USAGE) from None
        print(format_table(top, args.format))
        if args.format in ("text", "markdown"):
            print_rounds(args.run_dir, sweep, results, args.format)
            print_importance(args.run_dir, results, args.format)
    if args.format in ("text", "markdown"):
        from results.views.notes import edge_notes

        for note in edge_notes(args.run_dir, sweep, results):
            print(("\n> " if args.format == "markdown" else "\nnote: ") + note)
    return 0


def print_rounds(run_dir, sweep, results, fmt: str) -> None:
    """The rounds of --extend-edges (results.views.rounds), for a sweep that ran with it."""
    from results.views import rounds

    if rounds.extends(sweep):
        print("\nrounds of --extend-edges (round 0: the grid given):")
        print(format_table(rounds.rounds_frame(run_dir, results), fmt))


def print_importance(run_dir, results, fmt: str) -> None:
    """What explains validation accuracy over the grid (results.views.effects), as a small table."""
    from results.folder import table as T
    from results.views import effects

    point, shares = effects.importance_at_common_point(results, T.load_history(run_dir),
                                                       T.load_partial(run_dir))
    if shares is None:
        return
    print(f"\nshare of the variance of val_accuracy at epoch {point:g} (the furthest point every "
          f"trial reached) explained by:")
    print(format_table(effects.in_percent(shares), fmt))


def cmd_mlflow(args) -> int:
    """`mlflow`: a run folder logged to MLflow, finished or not; what is there already is kept."""
    from results.trackers.mlflow_log import TrackerError, log_run

    try:
        logged = log_run(args.run_dir, args.uri)
    except TrackerError as e:
        raise CliError(str(e), EXIT_FAILURE) from None
    print(f"{logged.trials} trial runs logged now, {logged.total} in all, under the parent run {logged.parent} "
          f"(experiment mlp-sweep) at {logged.uri}")
    return 0


def cmd_evaluate(args) -> int:
    from results.model.inference import evaluate_model

    r = evaluate_model(args.model_dir, args.data_dir, args.dataset, args.data)
    print(f"{r['dataset']} test set, {r['n']} {'rows' if r['rows'] else 'images'}: "
          f"accuracy {r['accuracy']:.4f}, loss {r['loss']:.4f}")
    names = r["classes"]
    print("per-class accuracy: "
          + "  ".join(f"{n}: {a:.3f}" for n, a in zip(names, r["per_class_accuracy"], strict=True)))
    print("confusion matrix (rows: true class, columns: predicted):")
    width = max(5, *(len(n) for n in names))
    print(" " * (width + 1) + " ".join(f"{n:>{width}}" for n in names))
    for n, row in zip(names, r["confusion_matrix"], strict=True):
        print(f"{n:>{width}} " + " ".join(f"{v:>{width}}" for v in row))
    print(f"confusion matrix image: {r['png']}")
    return 0


def cmd_predict(args) -> int:
    from results.model.inference import predict_files, predict_rows, takes_features
    from results.model.load import load_model

    if takes_features(load_model(args.model_dir)[1], args.files):
        rows = predict_rows(args.model_dir, args.files)
        if args.out:
            import pandas as pd

            from results.folder.writer import write_frame
            write_frame(pd.DataFrame(rows), args.out)
            print(f"{len(rows)} predictions: {args.out}")
            return 0
        for r in rows:
            print(f"{r['file']}:{r['row']}: {r['class']} (probability {r['probability']:.3f})")
        return 0
    for r in predict_files(args.model_dir, args.files):
        label = r["class"] if r["class"] == str(r["digit"]) else f"{r['digit']} ({r['class']})"
        note = " [dark on light: inverted first]" if r["inverted"] else ""
        print(f"{r['file']}: {label} (probability {r['probability']:.3f}){note}")
    return 0


COMMANDS = {"run": cmd_run, "retrain": cmd_retrain, "show": cmd_show, "evaluate": cmd_evaluate,
            "predict": cmd_predict, "mlflow": cmd_mlflow}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["run"] + argv  # `run_search.py` alone, or with run's flags, runs the sweep
    stops = Stops()  # the process's SIGTERM handler, which the commands read (args.stops)
    stops.install()
    try:
        args = build_parser().parse_args(argv)
        args.stops = stops
        return COMMANDS[args.command](args)
    except CliError as e:
        if debug:
            raise
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        again = " ".join([COMMAND, *argv])
        print(f"\n{stops.what}; nothing half-written was left. Run again with:\n  {again}", file=sys.stderr)
        return stops.code
    except Exception as e:  # noqa: BLE001 - known error types print one line; others too, unless --debug
        if debug:
            raise
        from mlp_core.data import DataError
        from mlp_core.model import ModelFileError
        from results.folder.table import RunError
        known = (DataError, ModelFileError, RunError, OSError, ValueError)
        kind = "" if isinstance(e, known) else f"{type(e).__name__}: "
        print(f"{PROG}: error: {kind}{e}" + ("" if isinstance(e, known) else
                                                     " (run with --debug for the traceback)"),
              file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
