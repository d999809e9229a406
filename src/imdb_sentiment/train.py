"""Training: corpus -> token ids (once) -> the LSTM by length-bucketed tf.data and early
stopping -> the n-gram bag by logistic regression, on the training reviews and the unlabelled ones
the LSTM labels -> the blend of the two on validation."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from . import data, text
from .augment import made_up_pairs
from .bag import fit_bag, fit_blend, word_polarity
from .embeddings import embedding_matrix
from .features import predict_features, rows
from .files import UserError, atomic_file, atomic_write_text
from .model import (
    as_float32,
    build_model,
    compile_model,
    lstm_model,
    part_logits,
    set_bag,
    set_blend,
)
from .runs import CHECKPOINT
from .short import CUTS, cut_copies, cut_texts

log = logging.getLogger(__name__)


# A length-bucketed dataset has no known number of batches; Keras warns at the end of each pass.
warnings.filterwarnings("ignore", message="Your input ran out of data")


@dataclass
class Trained:
    model: keras.Model
    vectorizer: text.Vectorizer
    embedding_report: dict
    history: dict
    train_seconds: float
    parts: dict  # what each part reached alone on validation, and the blend's weights
    pairs: dict  # the minimal pairs trained on: how many of each kind


def bucket_boundaries(max_len: int, step: int = 25) -> list[int]:
    return list(range(step, max_len + 1, step))


def make_dataset(
    features: dict, labels, cfg, training: bool, first_epoch: int = 0, pairs=None
) -> tf.data.Dataset:
    """Reviews of similar length share a batch, so little time goes into padding.

    Token ids are computed once, before this; the dataset only shuffles, groups and pads them.
    Training data runs through epochs first_epoch .. cfg.epochs - 1, each shuffled with its own
    number as seed: a run resumed at epoch k sees exactly the batches an uninterrupted run sees.

    pairs: (features, labels) of minimal pairs, the two texts of each one after the other. They
    come in batches of their own, both texts of a pair side by side, mixed among the other
    batches; every label is then [label, 1 for a pair's first text] (model.PairedCrossEntropy).
    """
    labels = np.asarray(labels, np.float32)
    if pairs is not None:  # [label, not the first of a pair]
        labels = np.stack([labels, np.zeros_like(labels)], axis=1)
    base = rows(features, labels).cache()
    bounds = bucket_boundaries(cfg.max_len)

    def batched(ds, length=lambda x, y: tf.shape(x["token_ids"])[0], size=cfg.batch_size):
        return ds.bucket_by_sequence_length(length, bounds, [size] * (len(bounds) + 1))

    if not training:
        return batched(base).prefetch(tf.data.AUTOTUNE)
    epochs = tf.data.Dataset.range(first_epoch, cfg.epochs)
    n = len(labels)
    ordinary = epochs.flat_map(
        lambda e: batched(base.shuffle(n, seed=e, reshuffle_each_iteration=False))
    )
    if pairs is None:
        return ordinary.prefetch(tf.data.AUTOTUNE)

    pair_x, pair_y = pairs
    both = tf.RaggedTensor.from_uniform_row_length(pair_x["token_ids"], 2)  # [pairs, 2, tokens]
    y = np.asarray(pair_y, np.float32).reshape(-1, 2)
    first = np.tile(np.float32([1, 0]), (len(y), 1))
    pair_labels = np.stack([y, first], axis=2)  # [pairs, 2 texts, (label, first of a pair)]
    pair_base = (
        tf.data.Dataset.from_tensor_slices((both, pair_labels))
        .map(lambda x, y: ({"token_ids": x.to_tensor()}, y))
        .cache()
    )

    def pair_batches(e):  # [pairs, 2, tokens] -> [rows, tokens], a pair's texts side by side
        shuffled = pair_base.shuffle(len(y), seed=e, reshuffle_each_iteration=False)
        size = _pairs_per_batch(cfg)
        return batched(shuffled, lambda x, y: tf.shape(x["token_ids"])[1], size).map(
            lambda x, y: (
                {"token_ids": tf.reshape(x["token_ids"], [-1, tf.shape(x["token_ids"])[-1]])},
                tf.reshape(y, [-1, 2]),
            )
        )

    # Each epoch's pair batches fall among its other batches at places drawn by its number.
    counts = [steps_per_epoch(features, cfg), _pair_batch_count(pair_x, cfg)]
    order = np.concatenate(
        [
            np.random.default_rng(e).permutation(np.repeat([0, 1], counts))
            for e in range(first_epoch, cfg.epochs)
        ]
    )
    return tf.data.Dataset.choose_from_datasets(
        [ordinary, epochs.flat_map(pair_batches)], tf.data.Dataset.from_tensor_slices(order)
    ).prefetch(tf.data.AUTOTUNE)


def _batch_count(lengths: np.ndarray, size: int, max_len: int) -> int:
    """Batches of make_dataset per pass: each length bucket is cut into batches on its own."""
    bucket = np.searchsorted(bucket_boundaries(max_len), lengths, side="right")
    return int(sum(-(-count // size) for count in np.bincount(bucket)))


def _pairs_per_batch(cfg) -> int:
    """A batch of pairs holds cfg.batch_size texts, as any other batch does."""
    return max(1, cfg.batch_size // 2)


def _pair_batch_count(pair_x: dict, cfg) -> int:
    """Batches of pairs per pass, bucketed by a pair's longer text."""
    lengths = pair_x["token_ids"].row_lengths().numpy().reshape(-1, 2).max(axis=1)
    return _batch_count(lengths, _pairs_per_batch(cfg), cfg.max_len)


def steps_per_epoch(features: dict, cfg, pairs=None) -> int:
    """Batches per pass of make_dataset, those of the pairs (make_dataset's) among them."""
    lengths = features["token_ids"].row_lengths().numpy()
    steps = _batch_count(lengths, cfg.batch_size, cfg.max_len)
    return steps + (_pair_batch_count(pairs[0], cfg) if pairs is not None else 0)


def keras_verbosity() -> int:
    """Keras's `verbose` for fit: a progress bar on a terminal, a line per epoch in a log file,
    nothing with --quiet."""
    if not log.isEnabledFor(logging.INFO):
        return 0
    return 1 if sys.stdout.isatty() else 2


def setup_devices(cfg) -> None:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus and cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    policy = keras.mixed_precision.global_policy().name  # the caller may have set one too
    log.info(
        f"devices: {len(gpus)} GPU(s)"
        + (" (cuDNN LSTM)" if gpus else ", training on CPU")
        + ("" if policy == "float32" else f"; {policy} in training, float32 in the model it makes")
    )


def make_strategy(name: str) -> tf.distribute.Strategy:
    """ "none": one device; "mirrored": every local GPU (or the CPU); "multiworker": the machines
    named in TF_CONFIG.

    Make it before TensorFlow runs any op: MultiWorkerMirroredStrategy refuses to start after.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        _average_step_metrics_as_scalars()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _average_step_metrics_as_scalars() -> None:
    """Keras 3 averages each train and test step's metrics over the workers with
    strategy.reduce(..., axis=0), which fails on scalars (keras-team/keras#20585,
    tensorflow/tensorflow#72388), so model.fit cannot run under MultiWorkerMirroredStrategy.
    Averaged as scalars (axis=None), they are the same numbers. Train and test steps are the
    only users of the "auto" reduction; predictions ("concat") are left to Keras."""
    from keras.src.backend.tensorflow import trainer  # private: reached only by this patch

    keras_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction == "auto" and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return keras.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return keras_reduce(values, strategy, reduction)

    trainer.reduce_per_replica = reduce_per_replica


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run folder and the export: the chief of a multi-worker
    cluster (worker 0 when TF_CONFIG names no chief), or the only process."""
    return strategy.extended.should_checkpoint


@contextmanager
def writable_run_dir(run_dir: Path, strategy: tf.distribute.Strategy):
    """The folder this process writes its run files to. The chief writes run_dir itself; any
    other worker writes a temporary folder, removed on exit, so a shared run folder has one writer.

    That folder starts with a copy of the chief's resume state (its checkpoint and history),
    so every worker resumes from the same epoch and weights: the chief replaces its checkpoint
    only at the end of an epoch, which no worker reaches before this copy.
    """
    if is_chief(strategy):
        run_dir.mkdir(parents=True, exist_ok=True)
        yield run_dir
        return
    with tempfile.TemporaryDirectory(prefix="imdb-sentiment-worker-") as tmp:
        for name in (CHECKPOINT, "history.csv"):
            if (run_dir / name).exists():
                shutil.copy(run_dir / name, tmp)
        yield Path(tmp)


def input_vectors(vocabulary, cfg, token_ids: tf.RaggedTensor, labels) -> tuple[np.ndarray, dict]:
    """The frozen vectors the LSTM reads, one row per token id: GloVe and, with
    cfg.word_polarity_min_reviews, each word's polarity over the training reviews beside it."""
    matrix, report = embedding_matrix(vocabulary, cfg)
    if not cfg.word_polarity_min_reviews:
        return matrix, report
    polarity = word_polarity(
        token_ids, labels, len(matrix), cfg.word_polarity_min_reviews, cfg.ngram_alpha
    )
    log.info(
        f"word polarity: {int((polarity != 0).sum())} words in at least "
        f"{cfg.word_polarity_min_reviews} training reviews carry their log-count ratio"
    )
    return np.concatenate([matrix, polarity[:, None]], axis=1), report


def build_compiled_model(cfg, matrix, train_x: dict, strategy: tf.distribute.Strategy, pairs=None):
    """The whole model, and its LSTM part compiled for training; fit the latter inside
    strategy.scope().

    The variables are made under the strategy, the model objects outside it: Keras ties a model
    to the strategy in scope when the object is made, and then fails to fit it across workers
    (the same issues as above) and predicts with it only together with every worker. Untied,
    predicting (the blend, evaluation, export) stays in this process.

    cfg.batch_size is per replica, so the global batch grows with the replicas (the learning rate
    is left as configured).
    """
    cfg = dataclasses.replace(cfg, batch_size=cfg.batch_size * strategy.num_replicas_in_sync)
    with strategy.scope():
        tied = build_model(cfg, matrix)
    model = keras.Model(tied.input, tied.output, name=tied.name)
    lstm = lstm_model(model)
    with strategy.scope():
        compile_model(lstm, cfg, steps_per_epoch(train_x, cfg, pairs))
        lstm.optimizer.build(lstm.trainable_variables)
    return model, lstm, cfg


def train(
    cfg,
    splits,
    run_dir: Path,
    strategy: tf.distribute.Strategy | None = None,
    encoder=None,
    unlabelled: list[str] | None = None,
    counterfactuals=None,
) -> Trained:
    """The default model, step by step: vectorize the reviews, make the minimal pairs, fit the
    LSTM part, then the n-gram bag (on the training reviews, the pairs and the unlabelled reviews
    the LSTM labels), then the blend of the two on validation.

    encoder: a pretrain.Encoder the LSTM starts from (it refuses one that does not match).
    unlabelled: reviews without labels, for the bag (cfg.bag_unlabelled). counterfactuals: a
    counterfactuals.Counterfactuals, whose training pairs both parts train on."""
    keras.utils.set_random_seed(cfg.seed)
    setup_devices(cfg)
    vectorizer, tokens, train_x, val_x = vectorize(cfg, splits, run_dir)
    train_y, val_y = splits.train.label.to_numpy(), splits.val.label.to_numpy()
    matrix, emb_report = input_vectors(vectorizer.vocabulary, cfg, train_x["token_ids"], train_y)
    pair_x, pair_y, pairs_report = pair_rows(
        cfg, counterfactuals, vectorizer, tokens, train_x["token_ids"], train_y, matrix
    )
    lstm_x, lstm_y, lstm_pairs = lstm_rows(cfg, train_x, train_y, pair_x, pair_y, pairs_report)
    strategy = strategy or tf.distribute.get_strategy()
    model, lstm, fit_cfg = build_compiled_model(cfg, matrix, lstm_x, strategy, lstm_pairs)
    if encoder:
        encoder.start(model, cfg, vectorizer.vocabulary, splits.train.review)
        log.info(f"pretrained: the LSTM starts from the encoder in {encoder.path}")
    history, seconds = fit_lstm(
        lstm, fit_cfg, lstm_x, lstm_y, val_x, val_y, run_dir, strategy, lstm_pairs
    )
    # Mixed precision ends with training: the blend is fitted, and the model evaluated, saved and
    # exported, in the float32 it serves in.
    model = as_float32(model)
    parts = lstm_on_validation(model, val_x, val_y, history, cfg)
    if cfg.ngram_buckets:
        # After the LSTM, which labels the unlabelled reviews the bag also fits. Deterministic,
        # so a resumed run fits the same bag again rather than checkpointing 4M weights.
        bag_ids, bag_y = bag_rows(cfg, train_x, train_y, pair_x, pair_y, pairs_report)
        if cfg.bag_unlabelled and unlabelled:
            ids, y = lstm_labelled(model, vectorizer, unlabelled, splits)
            if len(y):
                bag_ids, bag_y = tf.concat([bag_ids, ids], 0), np.concatenate([bag_y, y])
                parts["bag_unlabelled_reviews"] = len(y)
        bag = fit_bag(bag_ids, bag_y, val_x["ngram_ids"], val_y, cfg)
        set_bag(model, bag["weights"], bag["bias"])
        parts.update(
            bag_val_accuracy=bag["val_accuracy"], bag_C=bag["C"], bag_seconds=bag["seconds"]
        )
        val_pairs = counterfactuals.val if counterfactuals else None
        parts["blend"] = blend_on_validation(model, vectorizer, splits.val, val_x, cfg, val_pairs)
    return Trained(model, vectorizer, emb_report, history, seconds, parts, pairs_report)


def vectorize(cfg, splits, run_dir: Path) -> tuple[text.Vectorizer, tf.RaggedTensor, dict, dict]:
    """The vocabulary of the training reviews (saved in run_dir), the Vectorizer over it, the
    training reviews' tokens (ragged, [reviews, tokens]) and both splits' features
    (Vectorizer.features: "token_ids" and "ngram_ids", ragged, one row per review)."""
    t0 = time.perf_counter()
    tokens, vocabulary = text.training_vocabulary(splits.train.review, cfg)
    vectorizer = text.Vectorizer.from_config(vocabulary, cfg)
    train_x = vectorizer.features(tokens)
    val_x = vectorizer.features(text.tokenize_corpus(splits.val.review.tolist()))
    text.save_vocabulary(vocabulary, run_dir)
    log.info(
        f"text: vocabulary {len(vocabulary)} (min count {cfg.min_count}), "
        f"tokenized {len(splits.train) + len(splits.val)} reviews in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    return vectorizer, tokens, train_x, val_x


def lstm_rows(cfg, train_x: dict, train_y, pair_x: dict, pair_y, pairs_report: dict):
    """What the LSTM trains on: the training reviews, cfg.short_copies cut copies of each (a
    line is what users type; whole reviews never show one) and the minimal pairs' rows.
    Returns {"token_ids": ragged [rows, tokens]}, the rows' labels and, with cfg.pair_margin,
    the human and negation pairs apart from those rows, as make_dataset takes them; else None."""
    ids, y = [train_x["token_ids"]], [train_y]
    if cfg.short_copies:
        cuts = cut_copies(train_x["token_ids"], cfg.short_copies, cfg.seed)
        ids.append(cuts)
        y.append(np.repeat(train_y, cfg.short_copies))
        log.info(
            f"short copies: the LSTM trains on {len(train_y) + int(cuts.nrows())} rows, "
            f"{cuts.nrows()} of them cut"
        )
    order = pair_order(pairs_report, cfg.counterfactual_repeats) if cfg.pair_margin else []
    if len(pair_y) > len(order):  # the rows that are no pair's: all of them without pair_margin
        ids.append(pair_x["token_ids"][len(order) :])
        y.append(pair_y[len(order) :])
    pairs = None
    if len(order):
        pairs = ({"token_ids": tf.gather(pair_x["token_ids"], order)}, pair_y[order])
    return {"token_ids": tf.concat(ids, axis=0)}, np.concatenate(y), pairs


def pair_order(pairs_report: dict, repeats: int) -> np.ndarray:
    """Indices of pair_rows' rows that are pairs, the two texts of each one after the other:
    first come the human pairs' originals, then their edits, once per repeat; then the negation
    pairs, already side by side."""
    n = pairs_report["human_pairs"]
    one = np.stack([np.arange(n), n + np.arange(n)], axis=1).ravel()
    human = [2 * n * k + one for k in range(repeats if n else 0)]
    negation = 2 * n * len(human) + np.arange(2 * pairs_report.get("negation_sentence_pairs", 0))
    return np.concatenate([*human, negation]).astype(np.int64)


def fit_lstm(
    lstm: keras.Model,
    cfg,
    lstm_x: dict,
    lstm_y,
    val_x: dict,
    val_y,
    run_dir: Path,
    strategy,
    pairs=None,
) -> tuple[dict, float]:
    """Fits the compiled LSTM part (build_compiled_model) on (lstm_x, lstm_y) and the `pairs`
    (lstm_rows) under `strategy`, with early stopping on validation accuracy, checkpointing each
    epoch into run_dir and resuming from a checkpoint there. Returns the history (one list per
    metric, one entry per epoch) and the seconds fit took in this process."""
    if strategy.num_replicas_in_sync > 1:
        log.info(
            f"distribute: {strategy.num_replicas_in_sync} replicas, global batch {cfg.batch_size}"
        )
    early = keras.callbacks.EarlyStopping(
        monitor="val_accuracy",
        mode="max",
        patience=cfg.patience,
        start_from_epoch=cfg.early_stopping_from,
        restore_best_weights=True,
        verbose=min(keras_verbosity(), 1),
    )
    checkpoint = Checkpoint(run_dir / CHECKPOINT, early)
    first_epoch = checkpoint.restore(lstm)
    if first_epoch:
        log.info(
            f"resume: {run_dir / CHECKPOINT} holds the state after epoch {first_epoch}; "
            "continuing from there"
        )
        truncate_csv(run_dir / "history.csv", first_epoch)  # rows logged after that checkpoint go
    # Order matters at each epoch's end: early stopping and the history row first, then the
    # checkpoint. A kill between row and checkpoint leaves an extra row, which resuming drops; the
    # other order would lose the row of an epoch the checkpoint holds.
    callbacks = [
        early,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=first_epoch > 0),
        checkpoint,
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")),
    ]
    train_ds = make_dataset(lstm_x, lstm_y, cfg, True, first_epoch, pairs)
    val_ds = make_dataset({"token_ids": val_x["token_ids"]}, val_y, cfg, training=False)
    t0 = time.perf_counter()
    try:
        with strategy.scope():
            lstm.fit(
                train_ds,
                validation_data=val_ds,
                initial_epoch=first_epoch,
                steps_per_epoch=steps_per_epoch(lstm_x, cfg, pairs),
                epochs=cfg.epochs if not checkpoint.stopped else first_epoch,
                callbacks=callbacks,
                shuffle=False,  # make_dataset shuffles, by epoch number
                verbose=keras_verbosity(),
            )
    except tf.errors.UnavailableError as e:  # how TensorFlow aborts collectives when a peer is lost
        raise UserError(
            f"training stopped: a worker of the cluster in TF_CONFIG is gone "
            f"({_abort_reason(e)}). Start every worker again with the same command: "
            f"they resume after the last finished epoch"
        ) from None
    seconds = time.perf_counter() - t0
    checkpoint.path.unlink(missing_ok=True)  # finished: the best weights are in the model now
    history = pd.read_csv(run_dir / "history.csv").to_dict("list")
    log.info(
        f"train: {len(history['loss'])} epochs "
        f"({len(history['loss']) - first_epoch} in this process) in "
        f"{seconds:.0f}s; best val accuracy {max(history['val_accuracy']):.4f} (LSTM alone)"
    )
    return history, seconds


def lstm_on_validation(model: keras.Model, val_x: dict, val_y, history: dict, cfg) -> dict:
    """What the LSTM part reached alone on validation, and each member alone when there are
    several: {"lstm_val_accuracy": float, "lstm_member_val_accuracy": [float, ...]}."""
    parts = {"lstm_val_accuracy": max(history["val_accuracy"])}
    if cfg.lstm_members > 1:
        members = predict_features(lstm_model(model), {"token_ids": val_x["token_ids"]})
        alone = [float(((members[:, k] >= 0.5) == val_y).mean()) for k in range(members.shape[1])]
        parts["lstm_member_val_accuracy"] = alone
        log.info(
            f"LSTM members alone on validation: {', '.join(f'{a:.4f}' for a in alone)}; "
            f"their average {parts['lstm_val_accuracy']:.4f}"
        )
    return parts


def blend_on_validation(
    model: keras.Model, vectorizer, val: pd.DataFrame, val_x: dict, cfg, val_pairs=None
):
    """Fits the blend's weights into `model` on the validation reviews (`val`, their features
    val_x), with cfg.blend_on_cuts on their cuts (short.CUTS) and, with cfg.blend_pair_weight,
    on the texts of `val_pairs` (counterfactuals.Pairs of validation reviews): rows neither part
    trained on. Returns {"lstm": weight, "bag": weight, "bias": bias}."""
    parts_of = part_logits(model)
    val_y = val.label.to_numpy()
    logits, labels = [predict_features(parts_of, val_x)], [val_y]  # [reviews, 2]: LSTM, bag
    fitted_on = ["validation"]
    if cfg.blend_on_cuts:
        cut_x = vectorizer.features(text.tokenize_corpus(cut_texts(val.review)))
        logits.append(predict_features(parts_of, cut_x))
        labels.append(np.tile(val_y, len(CUTS)))
        fitted_on.append("its cuts")
    if cfg.blend_pair_weight and val_pairs is not None and len(val_pairs):
        texts, pair_y = val_pairs.rows()
        pair_logits = predict_features(parts_of, vectorizer.features(text.tokenize_corpus(texts)))
        logits += [pair_logits] * cfg.blend_pair_weight
        labels += [pair_y] * cfg.blend_pair_weight
        fitted_on.append(f"{len(val_pairs)} human pairs of its reviews")
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    weights, bias = fit_blend(logits[:, 0], logits[:, 1], labels)
    set_blend(model, weights, bias)
    log.info(
        f"blend (fitted on {', '.join(fitted_on)}): "
        f"log-odds = {weights[0]:.3f} * LSTM + {weights[1]:.3f} * bag {bias:+.3f}"
    )
    return {"lstm": float(weights[0]), "bag": float(weights[1]), "bias": bias}


# With the polarity column off, the made-up pairs still want word ratios: over the words in this
# many training reviews, as the column's default has them.
MADE_UP_MIN_REVIEWS = 100


def pair_rows(
    cfg,
    counterfactuals,
    vectorizer,
    tokens: tf.RaggedTensor,
    token_ids: tf.RaggedTensor,
    labels,
    matrix: np.ndarray,
) -> tuple[dict, np.ndarray, dict]:
    """The minimal pairs both parts train on beside the training reviews: the human training
    pairs (both texts, cfg.counterfactual_repeats times) and the made-up ones (augment.py) of the
    training reviews (their `tokens` and `token_ids`, ragged [reviews, tokens], and `labels`),
    the antonym reviews last. matrix: the input vectors, one row per token id. Returns their
    features (as Vectorizer.features), labels, and what they are (report["antonym_reviews"]: how
    many; pair_order reads the rest)."""
    rows, y, report = [], [], {"human_pairs": 0}
    if counterfactuals and cfg.counterfactual_repeats:
        texts, pair_y = counterfactuals.train.rows()
        rows += text.token_lists(text.tokenize_corpus(texts)) * cfg.counterfactual_repeats
        y += list(pair_y) * cfg.counterfactual_repeats
        report["human_pairs"] = len(counterfactuals.train)
    if cfg.made_up_negations or cfg.made_up_antonyms:
        ratios = (  # the polarity input column, or the same ratios computed for this alone
            matrix[:, -1]
            if cfg.word_polarity_min_reviews
            else word_polarity(token_ids, labels, len(matrix), MADE_UP_MIN_REVIEWS, cfg.ngram_alpha)
        )
        made, made_y, made_report = made_up_pairs(
            text.token_lists(tokens),
            labels,
            vectorizer.vocabulary,
            matrix[:, : cfg.glove_dim],
            ratios,
            cfg,
        )
        rows += made
        y += list(made_y)
        report.update(made_report)
    flat = tf.constant([t for row in rows for t in row], tf.string)
    tokens_of_rows = tf.RaggedTensor.from_row_lengths(flat, [len(row) for row in rows])
    log.info(f"minimal pairs: both parts train on {len(rows)} more rows")
    return vectorizer.features(tokens_of_rows), np.asarray(y, labels.dtype), report


def bag_rows(
    cfg, train_x: dict, train_y, pair_x: dict, pair_y, pairs_report: dict
) -> tuple[tf.RaggedTensor, np.ndarray]:
    """The bag's labelled rows: the training reviews' n-gram ids (ragged, one row per review)
    and the minimal pairs' (the antonym reviews, pair_rows' last, only with
    cfg.antonyms_in_bag), with their labels."""
    antonyms = 0 if cfg.antonyms_in_bag else pairs_report.get("antonym_reviews", 0)
    kept = len(pair_y) - antonyms
    ids = tf.concat([train_x["ngram_ids"], pair_x["ngram_ids"][:kept]], axis=0)
    return ids, np.concatenate([train_y, pair_y[:kept]])


def lstm_labelled(
    model: keras.Model, vectorizer, unlabelled: list[str], splits
) -> tuple[tf.RaggedTensor, np.ndarray]:
    """The unlabelled reviews as rows for the bag: their n-gram ids (ragged, one row per review)
    and the labels the trained LSTM part gives them (its log-odds >= 0), less reviews with the
    text of a validation or test review. The LSTM and the bag read a review differently, so what
    the LSTM gets right from word order, the bag learns as n-gram weights (co-training; the bag
    labelling its own rows helped less, docs/lab/experiments.md, thirteenth round)."""
    kept = data.without_texts_of(unlabelled, splits.val.review, splits.test.review)
    if len(kept) < len(unlabelled):
        log.info(
            f"bag: {len(unlabelled) - len(kept)} unlabelled reviews left out: "
            "each has the text of a validation or test review"
        )
    t0 = time.perf_counter()
    x = vectorizer.features(text.tokenize_corpus(kept))
    if not kept:
        return x["ngram_ids"], np.zeros(0, np.int64)
    pseudo = (predict_features(part_logits(model), x)[:, 0] >= 0).astype(np.int64)
    log.info(
        f"bag: {len(kept)} unlabelled reviews labelled by the LSTM "
        f"({100 * pseudo.mean():.1f}% positive) in {time.perf_counter() - t0:.0f}s"
    )
    return x["ngram_ids"], pseudo


def _abort_reason(error: tf.errors.OpError) -> str:
    """TensorFlow's own words, e.g. "recvmsg:Connection reset by peer", or "... unhealthy
    (stopped sending heartbeats): /job:worker/replica:0/task:1"."""
    text = error.message.split("aborted by:")[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0] if lines else type(error).__name__
    for line in lines[1:]:
        if not reason.endswith(":"):
            break
        reason += " " + line
    return reason


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
