"""search.trainable without Ray running: a checkpoint that cannot be read (cut short, another
file in its place, another trial's state) is named, and the trial goes on from its newest
readable earlier checkpoint, or from scratch, bit for bit as it would have."""
from __future__ import annotations

import numpy as np

from search.trainable import STATE_FILE, restore, save_state  # search first: Ray's environment

# isort: split

from ray import tune  # noqa: E402

from mlp_core.train import TrainConfig, Trainer, train  # noqa: E402


def checkpoints(tmp_path, small_dataset, config):
    """A trial folder with a checkpoint after each of three epochs, as the trainable saves them."""
    ds, trainer, folders = small_dataset, Trainer(config), []
    for i, metrics in enumerate(train(config, ds.X_train[:2048], ds.y_train[:2048], ds.X_val, ds.y_val,
                                      trainer=trainer)):
        folder = tmp_path / "trial" / f"checkpoint_{i:06d}"
        folder.mkdir(parents=True)
        save_state(str(folder / STATE_FILE), trainer, metrics)
        folders.append(folder)
    return folders


def test_an_unreadable_checkpoint_falls_back_to_the_newest_readable_one_then_to_scratch(tmp_path, small_dataset):
    config = TrainConfig(hidden_size=16, learning_rate=0.05, epochs=3, batch_size=256, seed=1)
    folders = checkpoints(tmp_path, small_dataset, config)
    intact, note = restore(tune.Checkpoint.from_directory(str(folders[2])), config)[::3]
    assert note is None and intact.epochs_done == 3
    state = folders[2] / STATE_FILE
    state.write_bytes(state.read_bytes()[:1000])  # cut short
    trainer, last, _, note = restore(tune.Checkpoint.from_directory(str(folders[2])), config)
    assert note.startswith("its checkpoint checkpoint_000002 could not be read (")
    assert note.endswith("; went on from checkpoint_000001")
    assert trainer.epochs_done == 2 and last["epoch"] == 2
    expected = Trainer.from_state(config, dict(np.load(folders[1] / STATE_FILE)))
    assert all(np.array_equal(getattr(trainer.params, k), getattr(expected.params, k))
               for k in ("W1", "b1", "W2", "b2"))
    # another trial's state (another hidden size) in the place of the one before, garbage before that
    other = TrainConfig(hidden_size=32, learning_rate=0.05, epochs=3, batch_size=256, seed=1)
    save_state(str(folders[1] / STATE_FILE), Trainer(other), {"epoch": 2})
    (folders[0] / STATE_FILE).write_bytes(b"not a checkpoint\n" * 50)
    trainer, last, _, note = restore(tune.Checkpoint.from_directory(str(folders[2])), config)
    assert trainer is None and last is None
    assert note.endswith("; started again from scratch")


def test_a_checkpoint_whose_weights_were_dropped_starts_afresh_without_a_note(tmp_path, small_dataset):
    config = TrainConfig(hidden_size=16, learning_rate=0.05, epochs=3, batch_size=256, seed=1)
    folders = checkpoints(tmp_path, small_dataset, config)
    (folders[2] / STATE_FILE).unlink()  # a finished trial's weights are dropped
    assert restore(tune.Checkpoint.from_directory(str(folders[2])), config) == (None, None, [], None)
