"""Pretraining of the recurrent encoder: a language model per reading direction, whose LSTMs then
start the classifier's Bidirectional layer (train.train(encoder=...)), fine-tuned from there.

Each language model has exactly the weights of one half of that layer and reads reviews through
the classifier's own tokenizer, vocabulary, head+tail truncation and frozen GloVe matrix, so the
LSTM sees the same inputs in pretraining and in fine-tuning. The forward one predicts each next
word; the backward one reads each review reversed (as Keras' backward layer does: the real tokens
last to first, padding still at the end) and so predicts each previous word. Two objectives
(Config.pretrain_objective):
- "glove_cosine": the next word's GloVe vector, through a Dense(glove_dim) head, by cosine; cheap.
- "sampled_softmax": the next word over the whole vocabulary, a softmax approximated with words
  drawn log-uniformly (the vocabulary is sorted by frequency) and the sampled-softmax correction.

The corpus is the unlabelled reviews and the training split's, never a validation or test review:
an unlabelled review with the text of one is dropped. A seeded slice of the training split is held
out of the corpus to measure the language models after each epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import ops

from . import data, text
from .config import Config
from .embeddings import embedding_matrix
from .files import UserError, atomic_dir, atomic_write_text, write_json
from .model import adam, lstm_layer, recurrent_encoders
from .resume import Fitted, resumable_fit
from .runs import CHECKPOINT
from .train import keras_verbosity, make_dataset, setup_devices, steps_per_epoch

log = logging.getLogger(__name__)

DIRECTIONS = ("forward", "backward")
ENCODER_FILE = "encoder.npz"  # {direction}_{kernel|recurrent_kernel|bias}: the two LSTMs' weights
REPORT_FILE = "pretrain_report.json"
# What pretraining reads from Config: an encoder is reused only for the same values and data.
PRETRAIN_FIELDS = (
    "seed",
    "vocab_size",
    "min_count",
    "max_len",
    "head_tokens",
    "glove_dim",
    "glove_path",
    "lstm_units",
    "clipnorm",
    "lr_schedule",
    "mixed_precision",
    "pretrain_objective",
    "pretrain_epochs",
    "pretrain_learning_rate",
    "pretrain_batch_size",
    "pretrain_sampled",
    "pretrain_holdout",
)
# What the classifier must share with the encoder it starts from (the vocabulary and the training
# split are checked as well).
MUST_MATCH = ("lstm_units", "glove_dim", "glove_path")


# ---------------------------------------------------------------------------- the language models


def reverse(ids: tf.Tensor) -> tf.Tensor:
    """Each right-padded row's real tokens last to first, the padding left at the end."""
    lengths = tf.reduce_sum(tf.cast(ids != text.PAD_ID, tf.int32), axis=1)
    return tf.reverse_sequence(ids, lengths, seq_axis=1, batch_axis=0)


def masked_mean(values: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    valid = ops.cast(valid, "float32")
    return ops.sum(values * valid) / ops.maximum(ops.sum(valid), 1.0)  # a batch may have no target


class SampledSoftmax(keras.layers.Layer):
    """Mean next-word loss of hidden states [n, units] against true ids [n]. In training, the
    softmax over the vocabulary is approximated by `num_sampled` words drawn log-uniformly with
    replacement; in evaluation it is the full softmax, the true cross-entropy (log perplexity),
    which the sampled loss only tracks from above.

    Words are drawn from a seed state that is a model variable, so a run resumed from a checkpoint
    draws what an uninterrupted run draws.
    """

    def __init__(self, vocab_size: int, num_sampled: int, seed: int, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.vocab_size, self.num_sampled = vocab_size, num_sampled
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.w = self.add_weight(
            shape=(self.vocab_size, input_shape[-1]), initializer="glorot_uniform", name="weights"
        )
        self.b = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="bias")

    def call(self, h, targets, training=False):
        h = tf.cast(h, tf.float32)
        if not training:
            logits = tf.matmul(h, self.w, transpose_b=True) + self.b
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
                tf.cast(targets, tf.int64), logits
            )
            return ops.sum(loss) / ops.maximum(ops.cast(ops.shape(loss)[0], "float32"), 1.0)
        log_range = math.log(self.vocab_size + 1)

        def expected_count(ids):  # of each id among the draws: num_sampled * P(id), log-uniform
            ids = tf.cast(ids, tf.float32)
            return self.num_sampled * (tf.math.log(ids + 2) - tf.math.log(ids + 1)) / log_range

        u = keras.random.uniform((self.num_sampled,), seed=self.seed_generator)
        sampled = tf.cast(tf.exp(u * log_range), tf.int64) - 1
        sampled = tf.clip_by_value(sampled, 0, self.vocab_size - 1)
        labels = tf.cast(targets, tf.int64)[:, None]
        drawn = (sampled, expected_count(labels), expected_count(sampled))
        loss = tf.nn.sampled_softmax_loss(
            self.w, self.b, labels, h, self.num_sampled, self.vocab_size, sampled_values=drawn
        )
        return ops.sum(loss) / ops.maximum(ops.cast(ops.shape(loss)[0], "float32"), 1.0)


class LanguageModels(keras.Model):
    """The two language models, trained together: their losses are summed and share no weight (Adam
    and clipnorm act on each weight alone), so each learns as if alone. The loss is the mean over
    the batch's next-word targets; "forward_loss" and "backward_loss" are logged beside it."""

    def __init__(self, cfg: Config, matrix: np.ndarray):
        super().__init__(name="language_models")
        vocab_size, dim = matrix.shape
        self.objective = cfg.pretrain_objective
        self.glove = keras.layers.Embedding(vocab_size, dim, trainable=False, name="glove")
        self.glove.build((None, None))
        self.glove.set_weights([matrix])
        self.lstms = [lstm_layer(cfg.lstm_units, return_sequences=True) for _ in DIRECTIONS]
        if self.objective == "glove_cosine":
            self.heads = [keras.layers.Dense(dim, dtype="float32") for _ in DIRECTIONS]
        else:
            self.heads = [
                SampledSoftmax(vocab_size, cfg.pretrain_sampled, cfg.seed + i)
                for i, _ in enumerate(DIRECTIONS)
            ]
        self.trackers = [keras.metrics.Mean(name=f"{d}_loss") for d in DIRECTIONS]

    def hidden(self, ids: tf.Tensor) -> list[tf.Tensor]:
        """Each direction's LSTM outputs [batch, time, units], in its own reading order."""
        return [
            lstm(self.glove(x), mask=x != text.PAD_ID)
            for lstm, x in zip(self.lstms, (ids, reverse(ids)))
        ]

    def call(self, inputs, training=False):
        ids = inputs["token_ids"]
        losses = []
        for head, h, x in zip(self.heads, self.hidden(ids), (ids, reverse(ids))):
            h, targets = h[:, :-1], x[:, 1:]  # the output after step t is scored on token t + 1
            if self.objective == "glove_cosine":
                # Padding and out-of-vocabulary words have no GloVe vector to aim at.
                predicted = ops.normalize(head(h), axis=-1)
                wanted = ops.normalize(ops.cast(self.glove(targets), "float32"), axis=-1)
                cosine = ops.sum(predicted * wanted, axis=-1)
                losses.append(masked_mean(1.0 - cosine, targets > text.OOV_ID))
            else:
                valid = targets != text.PAD_ID
                losses.append(
                    head(
                        tf.boolean_mask(h, valid),
                        tf.boolean_mask(targets, valid),
                        training=training,
                    )
                )
        return ops.stack(losses)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        for tracker, loss in zip(self.trackers, ops.unstack(y_pred)):
            # Weighted by reviews, as Keras weighs "loss", so that it stays the sum of the two.
            tracker.update_state(loss, sample_weight=ops.shape(x["token_ids"])[0])
        return ops.sum(y_pred)


class EpochSeconds(keras.callbacks.Callback):
    """Puts each epoch's wall time into its logs, so into history.csv (placed before CSVLogger)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["seconds"] = time.perf_counter() - self.start


# ---------------------------------------------------------------------------- the corpus


def reviews_checksum(reviews: Iterable[str]) -> str:
    """SHA-256 of a set of review texts, whatever their order."""
    h = hashlib.sha256()
    for review in sorted(reviews):
        h.update(review.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def corpus(
    splits: data.Splits, unlabelled: list[str], cfg: Config
) -> tuple[list[str], list[str], dict]:
    """(pretraining texts, held-out texts, counts): the unlabelled and the training reviews, less a
    seeded slice of the training split held out to measure the language models."""
    train = splits.train.review.tolist()
    held = np.zeros(len(train), bool)
    n_held = max(1, round(cfg.pretrain_holdout * len(train)))
    held[np.random.default_rng(cfg.seed).permutation(len(train))[:n_held]] = True
    held_out = [t for t, h in zip(train, held) if h]
    kept = data.without_texts_of(unlabelled, splits.val.review, splits.test.review, held_out)
    texts = kept + [t for t, h in zip(train, held) if not h]
    counts = {
        "unlabelled": len(kept),
        "training_split": int((~held).sum()),
        "held_out": len(held_out),
        "unlabelled_dropped_as_validation_or_test": len(unlabelled) - len(kept),
    }
    return texts, held_out, counts


def encoder_key(cfg: Config, splits: data.Splits, unlabelled: list[str]) -> str:
    """Identifies an encoder by what it depends on: the pretraining settings and all the data."""
    settings = json.dumps({f: getattr(cfg, f) for f in PRETRAIN_FIELDS}, sort_keys=True)
    h = hashlib.sha256(settings.encode())
    h.update(splits.checksum.encode())
    h.update(reviews_checksum(unlabelled).encode())
    return h.hexdigest()[:16]


def default_dir(cfg: Config, splits: data.Splits, unlabelled: list[str], cache_dir: Path) -> Path:
    return Path(cache_dir) / "encoders" / encoder_key(cfg, splits, unlabelled)


# ---------------------------------------------------------------------------- the encoder folder


@dataclass
class Encoder:
    """A pretrained encoder folder: the two LSTMs' weights and what they were pretrained with."""

    path: Path
    weights: dict[str, np.ndarray]
    cfg: Config
    vocabulary: list[str]
    report: dict

    @classmethod
    def load(cls, path) -> "Encoder":
        path = Path(path)
        files = (ENCODER_FILE, "config.json", text.VOCAB_FILE, REPORT_FILE)
        missing = [f for f in files if not (path / f).exists()]
        if missing:
            raise UserError(
                f"{path}: not a pretrained encoder (no {', '.join(missing)}); make one "
                f"with scripts/pretrain.py --out {path}"
            )
        with np.load(path / ENCODER_FILE, allow_pickle=False) as z:
            weights = {k: z[k] for k in z.files}
        return cls(
            path,
            weights,
            Config.load(path / "config.json"),
            text.load_vocabulary(path),
            json.loads((path / REPORT_FILE).read_text()),
        )

    def mismatches(
        self, cfg: Config, vocabulary: list[str], train_reviews: Iterable[str]
    ) -> list[str]:
        diffs = [
            f"{f} is {getattr(cfg, f)!r} here and {getattr(self.cfg, f)!r} in its config.json"
            for f in MUST_MATCH
            if getattr(cfg, f) != getattr(self.cfg, f)
        ]
        if list(vocabulary) != self.vocabulary:
            diffs.append(
                f"the vocabulary differs ({len(vocabulary)} words here, "
                f"{len(self.vocabulary)} in its {text.VOCAB_FILE})"
            )
        if reviews_checksum(train_reviews) != self.report["train_checksum"]:
            diffs.append(
                "it was pretrained with another training split (its corpus may hold this "
                "run's validation reviews)"
            )
        return diffs

    def start(self, model: keras.Model, cfg: Config, vocabulary: list[str], train_reviews) -> None:
        """Sets the model's first recurrent layer to the pretrained LSTMs; refuses an encoder that
        does not match the model, its vocabulary or its training split.

        Pretraining reads no labels, so its LSTMs read GloVe alone. A classifier that also reads
        each word's polarity (the last input column) takes the encoder's weights for the GloVe
        columns and keeps its initial input weights for the polarity, which fine-tuning learns."""
        diffs = self.mismatches(cfg, vocabulary, train_reviews)
        if diffs:
            raise UserError(
                f"{self.path}: this pretrained encoder does not fit the run: "
                f"{'; '.join(diffs)}. Pretrain one with the same --data and --config "
                "(scripts/pretrain.py), or leave out --pretrained"
            )
        for member in recurrent_encoders(model):
            for direction, layer in member.items():
                layer.set_weights(
                    [_fill(w.numpy(), self.weights[f"{direction}_{w.name}"]) for w in layer.weights]
                )

    def describe(self) -> dict:
        """What a run's metrics record of the encoder it started from."""
        keep = ("key", "objective", "epochs", "held_out_loss", "corpus", "unlabelled_source")
        return {"path": str(self.path.resolve()), **{k: self.report.get(k) for k in keep}}


def _fill(initial: np.ndarray, pretrained: np.ndarray) -> np.ndarray:
    """The pretrained weights, over the first rows of a kernel that reads more inputs than the
    encoder did (the polarity column); those extra rows keep their initial values."""
    if initial.shape == pretrained.shape:
        return pretrained
    filled = initial.copy()
    filled[: len(pretrained)] = pretrained
    return filled


# ---------------------------------------------------------------------------- pretraining


def pretrain(
    cfg: Config,
    splits: data.Splits,
    unlabelled: list[str],
    out: Path,
    fresh: bool = False,
    unlabelled_source: str = "",
) -> Encoder:
    """Pretrains the encoder into `out` (written whole, atomically), or returns the one already
    there for the same settings and data. A killed run resumes from its last epoch's checkpoint,
    kept beside `out` until the encoder is written; `fresh` starts over and replaces `out`."""
    out = Path(out)
    key = encoder_key(cfg, splits, unlabelled)
    if (out / ENCODER_FILE).exists() and not fresh:
        found = Encoder.load(out)
        if found.report.get("key") != key:
            raise UserError(
                f"{out}: holds an encoder pretrained with other settings or data; pass "
                "--fresh to replace it, or another --out"
            )
        log.info(f"pretrain: the encoder in {out} was made with these settings and data; using it")
        return found
    work = _work_folder(out, key, fresh)
    keras.utils.set_random_seed(cfg.seed)
    setup_devices(cfg)
    lm = _language_corpus(cfg, splits, unlabelled)
    matrix, emb_report = embedding_matrix(lm.vocabulary, cfg)
    model = LanguageModels(cfg, matrix)
    fitted = _fit_language_models(model, cfg, lm, len(matrix), work)
    history = pd.DataFrame(fitted.history)
    for row in history.itertuples():
        log.info(
            f"pretrain: epoch {row.epoch + 1}: loss {row.loss:.4f}, held-out {row.val_loss:.4f}, "
            f"{row.seconds:.0f}s ({lm.tokens / row.seconds:,.0f} tokens/s, both directions)"
        )
    report = {
        "key": key,
        "objective": cfg.pretrain_objective,
        "epochs": len(history),
        "held_out_loss": float(history.val_loss.iloc[-1]),
        "corpus": {**lm.counts, "tokens": lm.tokens},
        "seconds_per_epoch": history.seconds.round(1).tolist(),
        "unlabelled_source": unlabelled_source,
        "train_checksum": reviews_checksum(splits.train.review),
        "data_checksum": splits.checksum,
        "embedding": emb_report,
    }
    _write_encoder(model, cfg, lm.vocabulary, report, work, out)
    return Encoder.load(out)


def _work_folder(out: Path, key: str, fresh: bool) -> Path:
    """The folder beside `out` a pretraining run keeps its checkpoint and history in until the
    encoder is written: this run's (same key) is kept to resume from, another's emptied."""
    work = out.parent / f".{out.name}.work"
    same_run = (work / "key").exists() and (work / "key").read_text() == key
    if work.exists() and (fresh or not same_run):
        shutil.rmtree(work)  # another run's leftovers, or not wanted
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work / "key", key)
    return work


@dataclass
class LanguageCorpus:
    """What the language models read: the classifier's vocabulary, the token ids of the corpus
    and of the held-out training reviews, and what the corpus holds."""

    vocabulary: list[str]
    ids: tf.RaggedTensor
    held_ids: tf.RaggedTensor
    counts: dict[str, int]
    tokens: int


def _language_corpus(cfg: Config, splits: data.Splits, unlabelled: list[str]) -> LanguageCorpus:
    t0 = time.perf_counter()
    _, vocabulary = text.training_vocabulary(splits.train.review, cfg)  # the classifier's
    vectorizer = text.Vectorizer(vocabulary, cfg.max_len, cfg.head_tokens)  # token ids, no n-grams
    texts, held_out, counts = corpus(splits, unlabelled, cfg)
    ids = vectorizer.features(text.tokenize_corpus(texts))["token_ids"]
    held_ids = vectorizer.features(text.tokenize_corpus(held_out))["token_ids"]
    tokens = int(ids.row_lengths().numpy().sum())
    log.info(
        f"pretrain: corpus {len(texts)} reviews ({counts['unlabelled']} unlabelled, "
        f"{counts['training_split']} of the training split; "
        f"{counts['unlabelled_dropped_as_validation_or_test']} unlabelled dropped as validation or "
        f"test reviews), {tokens} tokens; {len(held_out)} training reviews held out; tokenized in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    return LanguageCorpus(vocabulary, ids, held_ids, counts, tokens)


def _fit_language_models(
    model: LanguageModels, cfg: Config, lm: LanguageCorpus, vocabulary_rows: int, work: Path
) -> Fitted:
    """Fits both language models on the corpus, resuming from a checkpoint in `work`."""
    batches = {"batch_size": cfg.pretrain_batch_size, "max_len": cfg.max_len}
    # Evaluation's full softmax holds [tokens, vocabulary] logits: small batches keep them ~256 MB.
    held_batch = (
        cfg.pretrain_batch_size
        if cfg.pretrain_objective == "glove_cosine"
        else max(1, min(cfg.pretrain_batch_size, 2**26 // (vocabulary_rows * cfg.max_len)))
    )
    steps = steps_per_epoch({"token_ids": lm.ids}, **batches)
    model.compile(optimizer=adam(cfg, cfg.pretrain_learning_rate, cfg.pretrain_epochs * steps))
    model({"token_ids": tf.ones([1, 2], tf.int32)})  # creates the weights, which restore assigns
    no_labels = np.zeros(int(lm.ids.nrows()))

    def train_data(first_epoch: int) -> tf.data.Dataset:
        return make_dataset(
            {"token_ids": lm.ids},
            no_labels,
            training=True,
            epochs=cfg.pretrain_epochs,
            first_epoch=first_epoch,
            **batches,
        )

    held = make_dataset(
        {"token_ids": lm.held_ids},
        np.zeros(int(lm.held_ids.nrows())),
        batch_size=held_batch,
        max_len=cfg.max_len,
        training=False,
    )
    return resumable_fit(
        model,
        work,
        CHECKPOINT,
        train_data,
        epochs=cfg.pretrain_epochs,
        steps=steps,
        validation_data=held,
        before=[EpochSeconds()],
        verbose=keras_verbosity(),
        log_as="pretrain",
    )


def _write_encoder(
    model: LanguageModels, cfg: Config, vocabulary: list[str], report: dict, work: Path, out: Path
) -> None:
    """The encoder folder, written whole; the work folder goes once it is."""
    weights = {
        f"{d}_{w.name}": w.numpy() for d, lstm in zip(DIRECTIONS, model.lstms) for w in lstm.weights
    }
    with atomic_dir(out) as tmp:
        np.savez(tmp / ENCODER_FILE, **weights)
        cfg.save(tmp / "config.json")
        text.save_vocabulary(vocabulary, tmp)
        shutil.copy(work / "history.csv", tmp / "history.csv")
        write_json(tmp / REPORT_FILE, report)
        if out.exists():  # --fresh: the old encoder goes once the new one is complete
            shutil.rmtree(out)
    shutil.rmtree(work)
    log.info(f"pretrain: encoder written to {out}")


def find_or_make(
    cfg: Config, splits, unlabelled_path: Path | None, cache_dir: Path
) -> Encoder | None:
    """The encoder for these settings and data from the cache folder, pretrained there first if
    needed; None when there are no unlabelled reviews to pretrain on."""
    unlabelled = data.read_unlabelled(unlabelled_path) if unlabelled_path else []
    if not unlabelled:
        where = f"in {unlabelled_path}" if unlabelled_path else "beside the data"
        log.info(
            f"pretrain: no unlabelled reviews {where} (give them with --unlabelled PATH); the LSTM "
            "starts from random weights"
        )
        return None
    log.info(f"pretrain: {len(unlabelled)} unlabelled reviews from {unlabelled_path}")
    return pretrain(
        cfg,
        splits,
        unlabelled,
        default_dir(cfg, splits, unlabelled, cache_dir),
        unlabelled_source=str(unlabelled_path),
    )
