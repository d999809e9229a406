"""Training: corpus -> token ids (once) -> length-bucketed tf.data -> fit with early stopping."""
from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from . import text
from .embeddings import embedding_matrix
from .io import atomic_write_text
from .model import build_model, compile_model


# A length-bucketed dataset has no known number of batches; Keras warns at the end of each pass.
warnings.filterwarnings("ignore", message="Your input ran out of data")


@dataclass
class Trained:
    model: keras.Model
    vectorizer: text.Vectorizer
    embedding_report: dict
    history: dict
    train_seconds: float


def bucket_boundaries(max_len: int, step: int = 25) -> list[int]:
    return list(range(step, max_len + 1, step))


def make_dataset(features: dict, labels, cfg, training: bool) -> tf.data.Dataset:
    """Reviews of similar length share a batch, so little time goes into padding.

    Token ids are computed once, before this; the dataset only shuffles, groups and pads them.
    """
    ds = rows(features, np.asarray(labels, np.float32)).cache()
    if training:
        ds = ds.shuffle(len(labels), seed=cfg.seed, reshuffle_each_iteration=True)
    bounds = bucket_boundaries(cfg.max_len)
    ds = ds.bucket_by_sequence_length(lambda x, y: tf.shape(x["token_ids"])[0], bounds,
                                      [cfg.batch_size] * (len(bounds) + 1))
    return ds.prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(features: dict, cfg) -> int:
    """Batches per pass of make_dataset: each length bucket is cut into batches on its own."""
    lengths = features["token_ids"].row_lengths().numpy()
    bucket = np.searchsorted(bucket_boundaries(cfg.max_len), lengths, side="right")
    return int(sum(-(-count // cfg.batch_size) for count in np.bincount(bucket)))


def rows(features: dict, labels=None) -> tf.data.Dataset:
    """Elements {name: dense 1-D ids} (, label); slicing RaggedTensors would yield ragged elements."""
    flat = {k: v.flat_values for k, v in features.items()}
    spans = {k: (v.row_starts(), v.row_lengths()) for k, v in features.items()}
    ds = tf.data.Dataset.from_tensor_slices(spans if labels is None else (spans, labels))

    def cut(spans, *label):
        x = {k: flat[k][start:start + n] for k, (start, n) in spans.items()}
        return (x, *label) if label else x

    return ds.map(cut, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def predict_features(model: keras.Model, features: dict, batch_size: int = 256) -> np.ndarray:
    """Probabilities in input order; batches are formed from length-sorted rows to save padding."""
    order = np.argsort(features["token_ids"].row_lengths().numpy(), kind="stable")
    ds = rows({k: tf.gather(v, order) for k, v in features.items()}).padded_batch(batch_size)
    p = model.predict(ds.prefetch(tf.data.AUTOTUNE), verbose=0)[:, 0]
    out = np.empty_like(p)
    out[order] = p
    return out


def setup_devices(cfg, log=print) -> None:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus and cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    log(f"devices: {len(gpus)} GPU(s)" + (" (cuDNN LSTM, mixed float16)" if gpus and cfg.mixed_precision
                                          else " (cuDNN LSTM)" if gpus else ", training on CPU"))


def make_strategy(name: str) -> tf.distribute.Strategy:
    """"none": one device; "mirrored": every local GPU (or the CPU); "multiworker": the machines in TF_CONFIG."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def build_compiled_model(cfg, matrix, train_x: dict, strategy: tf.distribute.Strategy):
    """Model and optimizer made under the strategy; cfg.batch_size is per replica, so the global
    batch grows with the replicas (the learning rate is left as configured)."""
    cfg = dataclasses.replace(cfg, batch_size=cfg.batch_size * strategy.num_replicas_in_sync)
    with strategy.scope():
        model = compile_model(build_model(cfg, matrix), cfg, steps_per_epoch(train_x, cfg))
    return model, cfg


def train(cfg, splits, run_dir: Path, log=print, strategy: tf.distribute.Strategy | None = None) -> Trained:
    keras.utils.set_random_seed(cfg.seed)
    setup_devices(cfg, log)
    t0 = time.perf_counter()
    tokens = text.tokenize_corpus(splits.train.review.tolist())
    vocabulary = text.build_vocabulary(tokens, cfg.vocab_size, cfg.min_count)
    vectorizer = text.Vectorizer.from_config(vocabulary, cfg)
    train_x = vectorizer.features(tokens)
    val_x = vectorizer.features(text.tokenize_corpus(splits.val.review.tolist()))
    atomic_write_text(run_dir / "vocab.txt", "\n".join(vocabulary) + "\n")
    log(f"text: vocabulary {len(vocabulary)} (min count {cfg.min_count}), "
        f"tokenized {len(splits.train) + len(splits.val)} reviews in {time.perf_counter() - t0:.1f}s")

    matrix, emb_report = embedding_matrix(vocabulary, cfg, log=log)
    strategy = strategy or tf.distribute.get_strategy()
    model, cfg = build_compiled_model(cfg, matrix, train_x, strategy)
    if strategy.num_replicas_in_sync > 1:
        log(f"distribute: {strategy.num_replicas_in_sync} replicas, global batch {cfg.batch_size}")
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=cfg.patience,
                                      restore_best_weights=True, verbose=1),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")),
    ]
    t1 = time.perf_counter()
    history = model.fit(make_dataset(train_x, splits.train.label, cfg, training=True),
                        validation_data=make_dataset(val_x, splits.val.label, cfg, training=False),
                        epochs=cfg.epochs, callbacks=callbacks, shuffle=False,  # tf.data shuffles
                        verbose=1 if sys.stdout.isatty() else 2)
    seconds = time.perf_counter() - t1
    log(f"train: {len(history.history['loss'])} epochs in {seconds:.0f}s; "
        f"best val accuracy {max(history.history['val_accuracy']):.4f}")
    return Trained(model, vectorizer, emb_report, history.history, seconds)


def new_run_dir(base: Path = Path("runs"), prefix: str = "") -> Path:
    stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
    path = base / stamp
    n = 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path
