"""The chosen trial exported as the sweep trained it: its best epoch's weights read back from its
checkpoints, its train and validation curves its own epochs, the test set measured on each.

Leaves out training: where the checkpoints are not at hand (remote storage, or a trial whose
checkpoints cannot be read) retrain.py trains the trial again, which gives the same weights. No Ray.
"""
from __future__ import annotations

from pathlib import Path

from threadpoolctl import threadpool_limits

from mlp_core.model import PARAM_NAMES, UNREADABLE, Params, evaluate, params_from_arrays, read_state
from mlp_core.train import EPOCH, TEST_ACCURACY, TEST_LOSS

from ..folder import table as T
from ..folder.dataset import test_data
from ..folder.runfolder import epoch_states, trial_folder
from .export import BEST_HISTORY_COLUMNS, ExportedModel, Weights, write_export
from .retrain import retrain, trial_threads


def load_weights(path: Path) -> Params:
    return params_from_arrays(read_state(path, PARAM_NAMES), str(path))


def export_from_checkpoints(run_dir: str | Path, log=print) -> ExportedModel:
    """Export the best trial of the run as it was trained (its best epoch's weights, bit for
    bit), with its epochs' curves and the test set measured on each epoch's weights; where its
    checkpoints are not all there, train it again instead (retrain.retrain)."""
    run_dir = Path(run_dir)
    sweep = T.load_sweep(run_dir)
    row = T.best_trial(T.load_results(run_dir))
    tid = str(row[T.TRIAL_ID])
    epochs = T.load_history(run_dir)
    epochs = epochs[epochs[T.TRIAL_ID] == tid].sort_values(EPOCH)
    states = epoch_states(trial_folder(run_dir, sweep.get("storage"), tid))
    best_epoch = row[T.BEST_EPOCH]
    wanted = [int(e) for e in epochs[EPOCH]]
    if not wanted or float(best_epoch) not in wanted or any(e not in states for e in wanted):
        log(f"trial {tid}'s checkpoints are not all at hand: training it again")
        return retrain(run_dir, log=log)
    data = test_data(sweep)
    X_test, y_test = data.X_test, data.y_test
    tests = []
    try:
        with threadpool_limits(limits=trial_threads(row)):  # its own threads: its own figures
            for e in wanted:
                params = load_weights(states[e])
                tests.append(evaluate(params, X_test, y_test))
                if e == int(best_epoch):
                    best = params
    except UNREADABLE as e:
        log(f"trial {tid}'s checkpoints could not be read ({e}): training it again")
        return retrain(run_dir, log=log)
    history = epochs.assign(**{TEST_LOSS: [t[0] for t in tests], TEST_ACCURACY: [t[1] for t in tests]})
    history = history[BEST_HISTORY_COLUMNS].reset_index(drop=True)
    test = tests[wanted.index(int(best_epoch))]
    outcome = write_export(run_dir, row, sweep, Weights(
        best, int(best_epoch), (float(row[T.VAL_LOSS]), float(row[T.VAL_ACCURACY])), test,
        int(sweep["seed"]), history), data)
    outcome.source = "checkpoints"
    return outcome
