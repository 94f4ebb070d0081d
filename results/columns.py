"""The run folder's names, defined once: its files, the tables' own columns (the metrics' names are
mlp_core.train's, the hyperparameters' settings.py's) and a trial's statuses.

Imports nothing, so a trial on a cluster's node (search/trainable.py) names what it reports with
these without loading pandas.
"""

RESULTS_FILE = "results.csv"
HISTORY_FILE = "history.csv"
# Reports from inside the first epoch (the fractional rungs), same columns as history.csv, with
# `epoch` the fraction: history.csv keeps one row per trial per whole epoch.
PARTIAL_FILE = "partial_epochs.csv"
SWEEP_FILE = "sweep.json"
# One JSON line per trial that ended since the tables were last rewritten (its results row, its
# history and partial rows), appended as it ends: the tables are rewritten every few seconds,
# and a driver killed in between loses nothing that ended. Empty after each rewrite.
JOURNAL_FILE = "journal.jsonl"
# In each of a trial's Tune checkpoints (a folder checkpoint_NNNNNN in its trial folder): its
# trainer's state and the report it was saved with.
STATE_FILE = "state.npz"
# The arrays a sweep from Python was given (X, y, X_test, y_test), kept for its resume and export
DATA_FILE = "data.npz"
# What Ray and Tune said of failing trials (tracebacks, dead workers), appended to by every driver.
RAY_LOG = "ray.log"
# After the sweep: the exported model's folder and files, and the plots' folder
BEST_DIR = "best"
MODEL_NPZ = "model.npz"
MODEL_JSON = "model.json"
MODEL_ONNX = "model.onnx"
PLOTS_DIR = "plots"

TRIAL_ID = "trial_id"
STATUS = "status"
EPOCHS = "epochs"
BEST_EPOCH = "best_epoch"
# The rung (in epochs) at which early stopping stopped the trial; empty for any other status.
STOPPED_AT_RUNG = "stopped_at_rung"
# What a sweep adds to each report (and the tables keep): the Ray node that trained it, the BLAS
# threads seen inside the trial, and the wall-clock time (Unix seconds) at which it ended.
NODE_ID = "node_id"
BLAS_THREADS = "blas_threads"
ENDED_AT = "ended_at"
# The --extend-edges round that added the trial (0: the grid given); only in a sweep that extends.
ROUND = "round"



class Status:
    """A trial's `status` in results.csv (a namespace: `diverged` is also mlp_core.train's
    metric key, the flag a report carries)."""
    COMPLETED = "completed"
    STOPPED_EARLY = "stopped_early"
    DIVERGED = "diverged"
    ERROR = "error"
    ALL = (COMPLETED, STOPPED_EARLY, DIVERGED, ERROR)
