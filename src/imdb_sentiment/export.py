"""Export for TF Serving: <base>/<version>/ with a serving_default that takes raw review strings."""

from __future__ import annotations

import logging
import platform
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from .config import DEFAULT_EXPORT_DIR
from .files import UserError, atomic_dir, write_json
from .model import as_float32, fuse_members, logit_model
from .text import Vectorizer, dense, save_vocabulary, tokenize

log = logging.getLogger(__name__)

INPUT_NAME = "review"
TOKENS_NAME = "tokens"  # input of token_logit, output of tokens: [batch, longest], "" pads
# Reviews per length-sorted sub-batch in the serving signature: 64 ran random batches of 256 reviews
# fastest of 16-128 on 2 cores (docs/serving.md).
SUB_BATCH = 64
# Batches of at most this many reviews run the LSTM members fused into one recurrence
# (model.fuse_members): faster up to about this size on 2 cores, slower beyond (docs/serving.md).
FUSED_UP_TO = 32


def serving_archive(
    model: keras.Model,
    vectorizer: Vectorizer,
    sub_batch: int = SUB_BATCH,
    fused_up_to: int = FUSED_UP_TO,
) -> keras.export.ExportArchive:
    """Raw strings in, probability and label out: the whole preprocessing lives in the graph.

    serving_default and logit run a batch of at most fused_up_to reviews through the LSTM members
    fused into one (model.fuse_members), and a larger one in sub-batches of sub_batch reviews of
    similar length (by_length); sub_batch=0 pads the whole batch to its longest review instead,
    and fused_up_to=0 never fuses (the benchmark compares them).
    ExportArchive saves only the model's weights and the vocabulary table (no optimizer state),
    in the form TF Serving's C++ loader restores.
    """
    spec = [tf.TensorSpec([None], tf.string, name=INPUT_NAME)]
    logits = logit_model(model)
    fused = fuse_members(model) if fused_up_to else None

    def run(review: tf.Tensor) -> tf.Tensor:
        """Log-odds of "positive" per review, [batch] float32."""
        features = vectorizer.features(tokenize(review))

        def members():
            if sub_batch:
                return by_length(logits, features, sub_batch)
            return _flat(logits(dense(features), training=False))

        if fused is None:
            return members()
        n = tf.shape(review)[0]
        return tf.cond(
            (n > 0) & (n <= fused_up_to),
            lambda: _flat(fused(dense(features), training=False)),
            members,
        )

    def serve(review):
        probability = tf.sigmoid(run(review))
        label = tf.where(probability >= 0.5, tf.constant("positive"), tf.constant("negative"))
        return {"probability": probability, "label": label}

    def token_ids(review):
        """The ids the model sees for each review: lets anyone check serving against training."""
        return vectorizer(review)

    def log_odds(features):
        return {"logit": _flat(logits(features, training=False))}

    def logit(review):
        """Log-odds of "positive": explanations compare these, as probabilities saturate at 0
        and 1."""
        return {"logit": run(review)}

    def tokens(review):
        """The review's tokens as the model reads them, right-padded with "" (no token is empty)."""
        return {TOKENS_NAME: tokenize(review).to_tensor(default_value="")}

    def token_logit(tokens):
        """logit of reviews given as tokens (as `tokens` returns them), through the same features:
        an explanation removes one token at a time without the text being tokenized again."""
        return log_odds(vectorizer.from_tokens(tokens))

    archive = keras.export.ExportArchive()
    archive.track(model)
    if fused is not None:
        archive.track(fused)
    archive.track(vectorizer.table)
    archive.add_endpoint("serving_default", serve, input_signature=spec)
    archive.add_endpoint("token_ids", token_ids, input_signature=spec)
    archive.add_endpoint("logit", logit, input_signature=spec)
    archive.add_endpoint("tokens", tokens, input_signature=spec)
    archive.add_endpoint(
        "token_logit",
        token_logit,
        input_signature=[tf.TensorSpec([None, None], tf.string, name=TOKENS_NAME)],
    )
    return archive


def by_length(net: keras.Model, features: dict[str, tf.RaggedTensor], size: int) -> tf.Tensor:
    """net's one output per review, [batch] float32, computed on sub-batches of `size` reviews of
    similar length, each padded only to its own longest review, and put back in input order.

    Reviews' lengths vary tenfold: a random batch of 256 padded to its longest review holds about
    1.7 times its real tokens, and the LSTM runs over every step. The model masks padding, so how
    much there is does not change the outputs.
    """
    order = tf.argsort(features["token_ids"].row_lengths(), stable=True)
    ranked = {name: tf.gather(ids, order) for name, ids in features.items()}
    n = tf.shape(order)[0]
    chunks = (n + size - 1) // size

    def step(i, out):
        chunk = {name: ids[i * size : (i + 1) * size] for name, ids in ranked.items()}
        return i + 1, out.write(i, _flat(net(dense(chunk), training=False)))

    # An explicit loop, as ExportArchive traces endpoints without autograph. Its iterations are
    # independent, so while_loop may run a few at once (parallel_iterations) on idle cores.
    _, out = tf.while_loop(
        lambda i, _: i < chunks,
        step,
        (
            tf.constant(0),
            tf.TensorArray(tf.float32, chunks, element_shape=[None], infer_shape=False),
        ),
    )
    return tf.scatter_nd(tf.expand_dims(order, 1), out.concat(), [n])


def _flat(output: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.cast(output, tf.float32), [-1])


def versions(base: Path) -> list[int]:
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted(
        int(p.name) for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists()
    )


def resolve_version(path: Path) -> Path:
    """A version folder as is, or the newest version inside a model folder."""
    path = Path(path)
    if (path / "saved_model.pb").exists():
        return path
    found = versions(path)
    if not found:
        raise UserError(
            f"{path}: no exported model here (expected <version>/saved_model.pb). "
            f"Train one with: python scripts/train.py"
        )
    return path / str(found[-1])


def export(
    model: keras.Model,
    vectorizer: Vectorizer,
    info: dict,
    base: Path = DEFAULT_EXPORT_DIR,
) -> Path:
    """Write the next numbered version atomically: TF Serving never sees a half-written one.

    The model is exported in float32 whatever policy trained it, and its serving graph without
    cuDNN ops wherever it is exported (model.as_float32), so it serves on CPUs.
    """
    model = as_float32(model)
    base = Path(base)
    version = (versions(base) or [0])[-1] + 1
    final = base / str(version)
    archive = serving_archive(as_float32(model, cudnn=False), vectorizer)
    with atomic_dir(final) as tmp:
        archive.write_out(str(tmp), verbose=False)
        model.save(tmp / "model.keras")
        save_vocabulary(vectorizer.vocabulary, tmp)
        write_json(
            tmp / "model_info.json",
            {
                **info,
                "version": version,
                "signature": signature_contract(),
                "packages": package_versions(),
            },
        )
    log.info(f"export: {final}")
    return final


def signature_contract() -> dict:
    return {
        "name": "serving_default",
        "inputs": {INPUT_NAME: "string [-1], raw UTF-8 review text"},
        "outputs": {
            "probability": "float32 [-1], P(positive)",
            "label": "string [-1], 'positive' or 'negative' (probability >= 0.5)",
        },
    }


def package_versions() -> dict:
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
