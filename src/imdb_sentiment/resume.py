"""Fitting that survives a kill: the whole training state checkpointed after every epoch, and a
run started again continues where the last finished epoch left it, to the same weights as an
uninterrupted run. Used by the classifier's training (train.py) and by pretraining (pretrain.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from .files import UserError, atomic_file, atomic_write_text

log = logging.getLogger(__name__)

HISTORY = "history.csv"


@dataclass
class Fitted:
    history: dict[str, list]  # one list per metric, one entry per epoch, resumed ones included
    seconds: float  # what fit took in this process
    first_epoch: int  # the epoch this process started from


def resumable_fit(
    model: keras.Model,
    folder: Path,
    checkpoint_name: str,
    train_data: Callable[[int], tf.data.Dataset],
    *,
    epochs: int,
    steps: int,
    validation_data: tf.data.Dataset,
    before: Sequence[keras.callbacks.Callback] = (),
    after: Sequence[keras.callbacks.Callback] = (),
    early: keras.callbacks.EarlyStopping | None = None,
    verbose: int = 1,
    log_as: str = "resume",
) -> Fitted:
    """Fits the compiled `model` up to `epochs` on train_data(first epoch), resuming from the
    checkpoint `folder/checkpoint_name` when there is one, and logs each epoch to folder/HISTORY.
    `before` run ahead of the history row (they may add to its logs), `after` behind the
    checkpoint; `early` (also among `before`) is checkpointed with the rest. Call it inside the
    distribution strategy's scope. The checkpoint is deleted when fit ends."""
    checkpoint = Checkpoint(folder / checkpoint_name, early)
    first_epoch = checkpoint.restore(model)
    if first_epoch:
        log.info(
            f"{log_as}: resuming after epoch {first_epoch}: {checkpoint.path} holds the state "
            "after it; continuing from there"
        )
        truncate_csv(folder / HISTORY, first_epoch)  # rows logged after that checkpoint go
    # Order matters at each epoch's end: early stopping and the history row first, then the
    # checkpoint. A kill between row and checkpoint leaves an extra row, which resuming drops; the
    # other order would lose the row of an epoch the checkpoint holds.
    callbacks = [
        *before,
        keras.callbacks.CSVLogger(str(folder / HISTORY), append=first_epoch > 0),
        checkpoint,
        *after,
    ]
    t0 = time.perf_counter()
    model.fit(
        train_data(first_epoch),
        validation_data=validation_data,
        initial_epoch=first_epoch,
        steps_per_epoch=steps,
        epochs=epochs if not checkpoint.stopped else first_epoch,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles, by epoch number
        verbose=verbose,
    )
    seconds = time.perf_counter() - t0
    checkpoint.path.unlink(missing_ok=True)  # finished: the weights are in the model now
    return Fitted(pd.read_csv(folder / HISTORY).to_dict("list"), seconds, first_epoch)


class Checkpoint(keras.callbacks.Callback):
    """The whole training state after each epoch, in one file replaced atomically.

    Keras' BackupAndRestore writes weights and metadata as two files, not atomically, and leaves
    out the random-seed state of dropout and EarlyStopping's best weights and patience counter;
    a run resumed from it does not end where an uninterrupted one does. Here every model variable
    (seed states included), every optimizer variable (step count included) and the early-stopping
    state (when there is one) go into one .npz written under a temporary name and renamed.
    """

    def __init__(self, path: Path, early_stopping: keras.callbacks.EarlyStopping | None = None):
        super().__init__()
        self.path = Path(path)
        self.early = early_stopping
        self.stopped = False
        self._early_state = None

    def _variables(self, model) -> list:
        return list(model.variables) + list(model.optimizer.variables)

    def restore(self, model) -> int:
        """Loads the state into `model` if a checkpoint exists; returns the epoch to start from."""
        if not self.path.exists():
            return 0
        # Built once: LossScaleOptimizer (mixed precision) adds its loss-scale variables again on
        # every build, and the variables would no longer line up with the checkpoint's.
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        with np.load(self.path, allow_pickle=False) as z:
            variables = self._variables(model)
            if int(z["n_variables"]) != len(variables):
                raise UserError(
                    f"{self.path}: checkpoint of a different model; delete it or use another "
                    "--run-dir"
                )
            for i, v in enumerate(variables):
                v.assign(z[f"v{i}"])
            if self.early:
                best = [z[f"best{i}"] for i in range(int(z["n_best"]))]
                self._early_state = {
                    "wait": int(z["wait"]),
                    "best_epoch": int(z["best_epoch"]),
                    "best": None if np.isnan(z["best"]) else float(z["best"]),
                    "best_weights": best or None,
                }
            self.stopped = bool(z["stopped"])
            return int(z["epoch"])

    def on_train_begin(self, logs=None):
        # EarlyStopping resets itself in its own on_train_begin, which ran first.
        if self._early_state:
            for key, value in self._early_state.items():
                setattr(self.early, key, value)

    def on_epoch_end(self, epoch, logs=None):
        arrays = {f"v{i}": v.numpy() for i, v in enumerate(self._variables(self.model))}
        if self.early:
            best = self.early.best_weights or []
            arrays.update(
                {f"best{i}": w for i, w in enumerate(best)},
                n_best=len(best),
                wait=self.early.wait,
                best_epoch=self.early.best_epoch,
                best=np.nan if self.early.best is None else self.early.best,
            )
        with atomic_file(self.path) as tmp:
            np.savez(
                tmp,
                n_variables=len(self._variables(self.model)),
                epoch=epoch + 1,
                stopped=bool(self.model.stop_training),
                **arrays,
            )


def truncate_csv(path: Path, rows: int) -> None:
    if path.exists():
        lines = path.read_text().splitlines(keepends=True)
        atomic_write_text(path, "".join(lines[: rows + 1]))
