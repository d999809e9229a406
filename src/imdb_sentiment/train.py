"""Training: corpus -> token ids (once) -> the LSTM by length-bucketed tf.data and early
stopping -> the n-gram bag by logistic regression, on the training reviews and the unlabelled ones
the LSTM labels -> the blend of the two on validation."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from . import data, text
from .augment import HUMAN, MadeUp, PairRows, made_up_pairs
from .bag import fit_bag, fit_blend, word_polarity
from .config import Config
from .counterfactuals import Counterfactuals, Pairs
from .embeddings import embedding_matrix
from .features import predict_features, rows
from .files import UserError
from .model import (
    as_float32,
    build_model,
    compile_model,
    lstm_model,
    part_logits,
    set_bag,
    set_blend,
)
from .progress import Phases
from .results import Blend, Parts
from .resume import Fitted, resumable_fit
from .runs import CHECKPOINT
from .short import CUTS, cut_copies, cut_texts


class StartingWeights(Protocol):
    """Weights the LSTM starts from (pretrain.Encoder, which builds on this module)."""

    path: Path

    def start(self, model: keras.Model, cfg: Config, vocabulary: list[str], reviews) -> None: ...


log = logging.getLogger(__name__)


# A length-bucketed dataset has no known number of batches; Keras warns at the end of each pass.
warnings.filterwarnings("ignore", message="Your input ran out of data")


@dataclass
class Trained:
    model: keras.Model
    vectorizer: text.Vectorizer
    embedding_report: dict
    history: dict[str, list]  # one list per metric, one entry per epoch
    train_seconds: float
    parts: Parts  # what each part reached alone on validation, and the blend's weights
    pairs: dict  # the minimal pairs trained on: how many of each kind, the antonym map


def bucket_boundaries(max_len: int, step: int = 25) -> list[int]:
    return list(range(step, max_len + 1, step))


def make_dataset(
    features: dict,
    labels,
    *,
    batch_size: int,
    max_len: int,
    training: bool,
    epochs: int = 1,
    first_epoch: int = 0,
    pairs: PairRows | None = None,
) -> tf.data.Dataset:
    """Reviews of similar length (at most max_len tokens) share a batch, so little time goes into
    padding.

    Token ids are computed once, before this; the dataset only shuffles, groups and pads them.
    Training data runs through epochs first_epoch .. epochs - 1, each shuffled with its own
    number as seed: a run resumed at epoch k sees exactly the batches an uninterrupted run sees.

    pairs: minimal pairs, side by side (PairRows.side_by_side). They come in batches of their
    own, both texts of a pair side by side, mixed among the other batches; every label is then
    [label, 1 for a pair's first text] (model.PairedCrossEntropy).
    """
    labels = np.asarray(labels, np.float32)
    if pairs is not None:  # [label, not the first of a pair]
        labels = np.stack([labels, np.zeros_like(labels)], axis=1)
    base = rows(features, labels).cache()
    bounds = bucket_boundaries(max_len)

    def batched(ds, length=lambda x, y: tf.shape(x["token_ids"])[0], size=batch_size):
        return ds.bucket_by_sequence_length(length, bounds, [size] * (len(bounds) + 1))

    if not training:
        return batched(base).prefetch(tf.data.AUTOTUNE)
    numbers = tf.data.Dataset.range(first_epoch, epochs)
    n = len(labels)
    ordinary = numbers.flat_map(
        lambda e: batched(base.shuffle(n, seed=e, reshuffle_each_iteration=False))
    )
    if pairs is None:
        return ordinary.prefetch(tf.data.AUTOTUNE)

    # Each epoch's pair batches fall among its other batches at places drawn by its number.
    counts = [
        steps_per_epoch(features, batch_size, max_len),
        _pair_batch_count(pairs, batch_size, max_len),
    ]
    order = np.concatenate(
        [
            np.random.default_rng(e).permutation(np.repeat([0, 1], counts))
            for e in range(first_epoch, epochs)
        ]
    )
    pair_batches = _pair_batches(pairs, batched, _pairs_per_batch(batch_size))
    return tf.data.Dataset.choose_from_datasets(
        [ordinary, numbers.flat_map(pair_batches)], tf.data.Dataset.from_tensor_slices(order)
    ).prefetch(tf.data.AUTOTUNE)


def _pair_batches(pairs: PairRows, batched, size: int):
    """The function of an epoch's number to its batches of `size` pairs, shuffled by that
    number: [pairs, 2, tokens] -> [rows, tokens], a pair's texts side by side."""
    both = tf.RaggedTensor.from_uniform_row_length(pairs.features["token_ids"], 2)  # [pairs, 2, ..]
    y = np.asarray(pairs.labels, np.float32).reshape(-1, 2)
    first = np.tile(np.float32([1, 0]), (len(y), 1))
    pair_labels = np.stack([y, first], axis=2)  # [pairs, 2 texts, (label, first of a pair)]
    pair_base = (
        tf.data.Dataset.from_tensor_slices((both, pair_labels))
        .map(lambda x, y: ({"token_ids": x.to_tensor()}, y))
        .cache()
    )

    def batches(e):
        shuffled = pair_base.shuffle(len(y), seed=e, reshuffle_each_iteration=False)
        return batched(shuffled, lambda x, y: tf.shape(x["token_ids"])[1], size).map(
            lambda x, y: (
                {"token_ids": tf.reshape(x["token_ids"], [-1, tf.shape(x["token_ids"])[-1]])},
                tf.reshape(y, [-1, 2]),
            )
        )

    return batches


def _batch_count(lengths: np.ndarray, size: int, max_len: int) -> int:
    """Batches of make_dataset per pass: each length bucket is cut into batches on its own."""
    bucket = np.searchsorted(bucket_boundaries(max_len), lengths, side="right")
    return int(sum(-(-count // size) for count in np.bincount(bucket)))


def _pairs_per_batch(batch_size: int) -> int:
    """A batch of pairs holds batch_size texts, as any other batch does."""
    return max(1, batch_size // 2)


def _pair_batch_count(pairs: PairRows, batch_size: int, max_len: int) -> int:
    """Batches of pairs per pass, bucketed by a pair's longer text."""
    lengths = pairs.features["token_ids"].row_lengths().numpy().reshape(-1, 2).max(axis=1)
    return _batch_count(lengths, _pairs_per_batch(batch_size), max_len)


def steps_per_epoch(
    features: dict, batch_size: int, max_len: int, pairs: PairRows | None = None
) -> int:
    """Batches per pass of make_dataset, those of the pairs (make_dataset's) among them."""
    lengths = features["token_ids"].row_lengths().numpy()
    steps = _batch_count(lengths, batch_size, max_len)
    return steps + (_pair_batch_count(pairs, batch_size, max_len) if pairs is not None else 0)


def keras_verbosity() -> int:
    """Keras's `verbose` for fit: a progress bar on a terminal, a line per epoch in a log file,
    nothing with --quiet."""
    if not log.isEnabledFor(logging.INFO):
        return 0
    return 1 if sys.stdout.isatty() else 2


def setup_devices(cfg: Config) -> None:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus and cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    policy = keras.mixed_precision.global_policy().name  # the caller may have set one too
    cpu = f"{os.cpu_count()} CPU cores" + (f" with {', '.join(f)}" if (f := cpu_features()) else "")
    log.info(
        f"devices: {len(gpus)} GPU(s)"
        + (" (cuDNN LSTM)" if gpus else f", training on {cpu}")
        + ("" if policy == "float32" else f"; {policy} in training, float32 in the model it makes")
    )


# The vector extensions that set the LSTM's speed on a CPU: an epoch takes about half as long
# with AVX-512 as with AVX2 alone (docs/results.md, training time).
SPEED_FEATURES = ("avx512f", "avx2", "fma")


def cpu_features() -> list[str]:
    """Which of SPEED_FEATURES this CPU has, as Linux's /proc/cpuinfo names them ([] elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")),
        [],
    )
    return [f for f in SPEED_FEATURES if f in flags]


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


def input_vectors(
    vocabulary: list[str], cfg: Config, token_ids: tf.RaggedTensor, labels
) -> tuple[np.ndarray, dict]:
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


def build_compiled_model(
    cfg: Config, matrix: np.ndarray, rows: LstmRows, strategy: tf.distribute.Strategy
) -> tuple[keras.Model, keras.Model, int]:
    """The whole model, its LSTM part compiled for training (fit the latter inside
    strategy.scope()), and the global batch size.

    The variables are made under the strategy, the model objects outside it: Keras ties a model
    to the strategy in scope when the object is made, and then fails to fit it across workers
    (the same issues as above) and predicts with it only together with every worker. Untied,
    predicting (the blend, evaluation, export) stays in this process.

    cfg.batch_size is per replica, so the global batch grows with the replicas (the learning rate
    is left as configured).
    """
    batch_size = cfg.batch_size * strategy.num_replicas_in_sync
    with strategy.scope():
        tied = build_model(cfg, matrix)
    model = keras.Model(tied.input, tied.output, name=tied.name)
    lstm = lstm_model(model)
    with strategy.scope():
        steps = steps_per_epoch(rows.features, batch_size, cfg.max_len, rows.pairs)
        compile_model(lstm, cfg, steps)
        lstm.optimizer.build(lstm.trainable_variables)
    return model, lstm, batch_size


def train(
    cfg: Config,
    splits: data.Splits,
    run_dir: Path,
    strategy: tf.distribute.Strategy | None = None,
    encoder: StartingWeights | None = None,
    unlabelled: list[str] | None = None,
    counterfactuals: Counterfactuals | None = None,
    phases: Phases | None = None,
) -> Trained:
    """The default model, step by step: vectorize the reviews, make the minimal pairs, fit the
    LSTM part, then the n-gram bag (on the training reviews, the pairs and the unlabelled reviews
    the LSTM labels), then the blend of the two on validation.

    encoder: a pretrained encoder the LSTM starts from (it refuses one that does not match).
    unlabelled: reviews without labels, for the bag (cfg.bag_unlabelled). counterfactuals: the
    human pairs, whose training pairs both parts train on. phases: where each step's time is
    noted."""
    phases = phases or Phases()
    keras.utils.set_random_seed(cfg.seed)
    setup_devices(cfg)
    with phases("tokenizing, input vectors and pairs", rows=len(splits.train) + len(splits.val)):
        corpus = vectorize(cfg, splits, run_dir)
        matrix, emb_report = input_vectors(
            corpus.vectorizer.vocabulary, cfg, corpus.train_x["token_ids"], corpus.train_y
        )
        pairs, made_report = pair_rows(cfg, counterfactuals, corpus, matrix)
    trained_pairs = pairs.repeated(HUMAN, cfg.counterfactual_repeats)
    rows = lstm_rows(cfg, corpus, trained_pairs)
    strategy = strategy or tf.distribute.get_strategy()
    model, lstm, batch_size = build_compiled_model(cfg, matrix, rows, strategy)
    if encoder:
        encoder.start(model, cfg, corpus.vectorizer.vocabulary, splits.train.review)
        log.info(f"pretrained: the LSTM starts from the encoder in {encoder.path}")
    with phases("LSTM") as phase:
        fitted = fit_lstm(lstm, cfg, batch_size, rows, corpus, run_dir, strategy)
        phase.rows = rows.count * (len(fitted.history["loss"]) - fitted.first_epoch)
    # Mixed precision ends with training: the blend is fitted, and the model evaluated, saved and
    # exported, in the float32 it serves in.
    model = as_float32(model)
    parts = lstm_on_validation(model, corpus, fitted.history, cfg)
    if cfg.ngram_buckets:
        # After the LSTM, which labels the unlabelled reviews the bag also fits. Deterministic,
        # so a resumed run fits the same bag again rather than checkpointing 4M weights.
        fit_bag_part(model, cfg, corpus, trained_pairs, unlabelled, splits, parts, phases)
        val_pairs = counterfactuals.val if counterfactuals else None
        with phases("blend"):
            parts.blend = blend_on_validation(model, corpus, splits.val, cfg, val_pairs)
    return Trained(
        model,
        corpus.vectorizer,
        emb_report,
        fitted.history,
        fitted.seconds,
        parts,
        {**pairs.counts(), **made_report},
    )


@dataclass
class Corpus:
    """The training and validation reviews as the model reads them."""

    vectorizer: text.Vectorizer  # over the training reviews' vocabulary
    tokens: tf.RaggedTensor  # the training reviews' tokens, [reviews, tokens]
    train_x: dict[str, tf.RaggedTensor]  # Vectorizer.features: "token_ids", "ngram_ids"
    val_x: dict[str, tf.RaggedTensor]
    train_y: np.ndarray
    val_y: np.ndarray


def vectorize(cfg: Config, splits: data.Splits, run_dir: Path) -> Corpus:
    """The vocabulary of the training reviews (saved in run_dir), the Vectorizer over it, and
    both splits as it reads them."""
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
    y = splits.train.label.to_numpy(), splits.val.label.to_numpy()
    return Corpus(vectorizer, tokens, train_x, val_x, *y)


@dataclass
class LstmRows:
    """What the LSTM part trains on: rows of token ids and their labels, and with pair_margin
    the paired rows apart from those, side by side (make_dataset's `pairs`)."""

    features: dict[str, tf.RaggedTensor]  # {"token_ids": ragged [rows, tokens]}
    labels: np.ndarray
    pairs: PairRows | None

    @property
    def count(self) -> int:
        """Rows in an epoch, the paired ones included."""
        return len(self.labels) + (len(self.pairs) if self.pairs is not None else 0)


def lstm_rows(cfg: Config, corpus: Corpus, pairs: PairRows) -> LstmRows:
    """The training reviews, cfg.short_copies cut copies of each (a line is what users type;
    whole reviews never show one) and the minimal pairs' rows."""
    ids, y = [corpus.train_x["token_ids"]], [corpus.train_y]
    if cfg.short_copies:
        cuts = cut_copies(corpus.train_x["token_ids"], cfg.short_copies, cfg.seed)
        ids.append(cuts)
        y.append(np.repeat(corpus.train_y, cfg.short_copies))
        log.info(
            f"short copies: the LSTM trains on {len(corpus.train_y) + int(cuts.nrows())} rows, "
            f"{cuts.nrows()} of them cut"
        )
    side_by_side = None
    if cfg.pair_margin:
        side_by_side = pairs.side_by_side()
        pairs = pairs.take(~pairs.mask(lambda kind: kind.paired))
    if len(pairs):
        ids.append(pairs.features["token_ids"])
        y.append(pairs.labels)
    if side_by_side is not None and not len(side_by_side):
        side_by_side = None
    return LstmRows({"token_ids": tf.concat(ids, axis=0)}, np.concatenate(y), side_by_side)


def fit_lstm(
    lstm: keras.Model,
    cfg: Config,
    batch_size: int,
    rows: LstmRows,
    corpus: Corpus,
    run_dir: Path,
    strategy: tf.distribute.Strategy,
) -> Fitted:
    """Fits the compiled LSTM part (build_compiled_model) on `rows` in global batches of
    batch_size under `strategy`, with early stopping on validation accuracy, checkpointing each
    epoch into run_dir and resuming from a checkpoint there."""
    if strategy.num_replicas_in_sync > 1:
        log.info(f"distribute: {strategy.num_replicas_in_sync} replicas, global batch {batch_size}")
    early = keras.callbacks.EarlyStopping(
        monitor="val_accuracy",
        mode="max",
        patience=cfg.patience,
        start_from_epoch=cfg.early_stopping_from,
        restore_best_weights=True,
        verbose=min(keras_verbosity(), 1),
    )
    tensorboard = keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"))
    batches = {"batch_size": batch_size, "max_len": cfg.max_len}

    def train_data(first_epoch: int) -> tf.data.Dataset:
        return make_dataset(
            rows.features,
            rows.labels,
            training=True,
            epochs=cfg.epochs,
            first_epoch=first_epoch,
            pairs=rows.pairs,
            **batches,
        )

    val_ids = {"token_ids": corpus.val_x["token_ids"]}
    with strategy.scope(), _lost_workers_told():
        fitted = resumable_fit(
            lstm,
            run_dir,
            CHECKPOINT,
            train_data,
            epochs=cfg.epochs,
            steps=steps_per_epoch(rows.features, pairs=rows.pairs, **batches),
            validation_data=make_dataset(val_ids, corpus.val_y, training=False, **batches),
            before=[early],
            after=[tensorboard],
            early=early,
            verbose=keras_verbosity(),
        )
    epochs, best = len(fitted.history["loss"]), max(fitted.history["val_accuracy"])
    log.info(
        f"train: {epochs} epochs ({epochs - fitted.first_epoch} in this process) in "
        f"{fitted.seconds:.0f}s; best val accuracy {best:.4f} (LSTM alone)"
    )
    return fitted


def lstm_on_validation(model: keras.Model, corpus: Corpus, history: dict, cfg: Config) -> Parts:
    """What the LSTM part reached alone on validation, and each member alone when there are
    several."""
    parts = Parts(lstm_val_accuracy=max(history["val_accuracy"]))
    if cfg.lstm_members > 1:
        members = predict_features(lstm_model(model), {"token_ids": corpus.val_x["token_ids"]})
        parts.lstm_member_val_accuracy = [
            float(((members[:, k] >= 0.5) == corpus.val_y).mean()) for k in range(members.shape[1])
        ]
        log.info(
            "LSTM members alone on validation: "
            + ", ".join(f"{a:.4f}" for a in parts.lstm_member_val_accuracy)
            + f"; their average {parts.lstm_val_accuracy:.4f}"
        )
    return parts


def fit_bag_part(
    model: keras.Model,
    cfg: Config,
    corpus: Corpus,
    pairs: PairRows,
    unlabelled: list[str] | None,
    splits: data.Splits,
    parts: Parts,
    phases: Phases,
) -> None:
    """Fits the n-gram bag into `model` on the training reviews, the minimal pairs of kinds the
    bag reads and (cfg.bag_unlabelled) the unlabelled reviews the LSTM labels; notes in
    `parts` what it reached on validation."""
    in_bag = pairs.take(pairs.mask(lambda kind: kind.in_bag(cfg)))
    ids = tf.concat([corpus.train_x["ngram_ids"], in_bag.features["ngram_ids"]], axis=0)
    y = np.concatenate([corpus.train_y, in_bag.labels])
    if cfg.bag_unlabelled and unlabelled:
        with phases("labelling the unlabelled reviews", rows=len(unlabelled)):
            more_ids, more_y = lstm_labelled(model, corpus.vectorizer, unlabelled, splits)
        if len(more_y):
            ids, y = tf.concat([ids, more_ids], 0), np.concatenate([y, more_y])
            parts.bag_unlabelled_reviews = len(more_y)
    grid = len(cfg.ngram_c_grid)
    with phases(f"bag, {grid} value{'s' if grid > 1 else ''} of C", rows=len(y) * grid):
        bag = fit_bag(ids, y, corpus.val_x["ngram_ids"], corpus.val_y, cfg)
    set_bag(model, bag["weights"], bag["bias"])
    parts.bag_val_accuracy, parts.bag_C = bag["val_accuracy"], bag["C"]
    parts.bag_seconds = bag["seconds"]


def blend_on_validation(
    model: keras.Model,
    corpus: Corpus,
    val: pd.DataFrame,
    cfg: Config,
    val_pairs: Pairs | None = None,
) -> Blend:
    """Fits the blend's weights into `model` on the validation reviews (`val`), with
    cfg.blend_on_cuts on their cuts (short.CUTS) and, with cfg.blend_pair_weight, on the texts
    of `val_pairs` (the human pairs of validation reviews): rows neither part trained on."""
    parts_of, vectorizer = part_logits(model), corpus.vectorizer
    logits, labels = [predict_features(parts_of, corpus.val_x)], [corpus.val_y]  # LSTM, bag
    fitted_on = ["validation"]
    if cfg.blend_on_cuts:
        cut_x = vectorizer.features(text.tokenize_corpus(cut_texts(val.review)))
        logits.append(predict_features(parts_of, cut_x))
        labels.append(np.tile(corpus.val_y, len(CUTS)))
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
    return Blend(float(weights[0]), float(weights[1]), float(bias))


# With the polarity column off, the made-up pairs still want word ratios: over the words in this
# many training reviews, as the column's default has them.
MADE_UP_MIN_REVIEWS = 100


def pair_rows(
    cfg: Config, counterfactuals: Counterfactuals | None, corpus: Corpus, matrix: np.ndarray
) -> tuple[PairRows, dict]:
    """The minimal pairs both parts train on beside the training reviews, each once: the human
    training pairs (with cfg.counterfactual_repeats) and the made-up ones (augment.py) of the
    training reviews. matrix: the input vectors, one row per token id. Returns the rows and what
    the antonym map holds."""
    made, report = [], {}
    if counterfactuals and cfg.counterfactual_repeats:
        texts, pair_y = counterfactuals.train.rows()  # the originals, then their edits
        n = len(counterfactuals.train)
        tokens = text.token_lists(text.tokenize_corpus(texts))
        made.append(MadeUp(HUMAN, tokens, pair_y, np.tile(np.arange(n), 2)))
    else:
        made.append(MadeUp(HUMAN, [], np.zeros(0, np.int64)))
    if cfg.made_up_negations or cfg.made_up_antonyms:
        ratios = (  # the polarity input column, or the same ratios computed for this alone
            matrix[:, -1]
            if cfg.word_polarity_min_reviews
            else word_polarity(
                corpus.train_x["token_ids"],
                corpus.train_y,
                len(matrix),
                MADE_UP_MIN_REVIEWS,
                cfg.ngram_alpha,
            )
        )
        vocabulary, vectors = corpus.vectorizer.vocabulary, matrix[:, : cfg.glove_dim]
        more, report = made_up_pairs(
            text.token_lists(corpus.tokens), corpus.train_y, vocabulary, vectors, ratios, cfg
        )
        made += more
    rows = PairRows.of(made, corpus.vectorizer, corpus.train_y.dtype)
    log.info(f"minimal pairs: both parts train on {len(rows)} more rows (each once)")
    return rows, report


def lstm_labelled(
    model: keras.Model, vectorizer: text.Vectorizer, unlabelled: list[str], splits: data.Splits
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


@contextmanager
def _lost_workers_told():
    """A cluster that lost a worker as a UserError saying how to go on."""
    try:
        yield
    except tf.errors.UnavailableError as e:  # how TensorFlow aborts collectives when a peer is lost
        raise UserError(
            f"training stopped: a worker of the cluster in TF_CONFIG is gone "
            f"({_abort_reason(e)}). Start every worker again with the same command: "
            f"they resume after the last finished epoch"
        ) from None


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
