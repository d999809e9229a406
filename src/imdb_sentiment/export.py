"""Export for TF Serving: <base>/<version>/ with a serving_default that takes raw review strings."""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from .card import CARD_FILE
from .config import DEFAULT_EXPORT_DIR
from .files import UserError, atomic_dir, write_json
from .model import as_float32, logit_model
from .text import Vectorizer, dense, save_vocabulary, tokenize

log = logging.getLogger(__name__)

INPUT_NAME = "review"
TOKENS_NAME = "tokens"  # input of token_logit, output of tokens: [batch, longest], "" pads
# TF Serving runs the requests in this TFRecord of PredictionLogs on each version before serving it
# (SavedModel warm-up); model_versions runs them too.
WARM_UP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
# One request of 256 reviews of 12 to 2,178 tokens. Until a call of many long reviews has run,
# calls of 32 reviews took 1.4 to 1.6 times as long (docs/lab/serving-rounds.md).
WARM_UP_REVIEWS = [" ".join(["a fine film"] * (4 + i * i // 90)).encode() for i in range(256)]
# Reviews per length-sorted sub-batch in the serving signature: 16 ran batches of 32 and 64 reviews
# fastest of 16-48, and batches of 256 within 5% of the fastest (docs/lab/serving-rounds.md).
SUB_BATCH = 16


def serving_archive(
    model: keras.Model,
    vectorizer: Vectorizer,
    sub_batch: int = SUB_BATCH,
    kernel: bool = True,
) -> keras.export.ExportArchive:
    """Raw strings in, probability and label out: the whole preprocessing lives in the graph.

    serving_default and logit run a batch in sub-batches of sub_batch reviews of similar length
    (by_length), each LSTM by TensorFlow's fused BlockLSTMV2 kernel (KernelLSTM); sub_batch=0
    pads the whole batch to its longest review instead, and kernel=False runs Keras's own LSTM
    loop (the benchmark compares them).
    ExportArchive saves only the model's weights and the vocabulary table (no optimizer state),
    in the form TF Serving's C++ loader restores.
    """
    logits = logit_model(model)
    net = kernel_lstms(logits) if kernel else logits
    archive = keras.export.ExportArchive()
    archive.track(net)
    archive.track(vectorizer.table)
    for name, (endpoint, spec) in _endpoints(net, vectorizer, sub_batch).items():
        archive.add_endpoint(name, endpoint, input_signature=spec)
    return archive


def _endpoints(
    net: keras.Model, vectorizer: Vectorizer, sub_batch: int
) -> dict[str, tuple[Callable, list[tf.TensorSpec]]]:
    """serving_archive's signatures, by name: each one's function and its input."""
    reviews = [tf.TensorSpec([None], tf.string, name=INPUT_NAME)]

    def run(review: tf.Tensor) -> tf.Tensor:
        """Log-odds of "positive" per review, [batch] float32."""
        features = vectorizer.features(tokenize(review))
        if sub_batch:
            return by_length(net, features, sub_batch)
        return _flat(net(dense(features), training=False))

    def serve(review: tf.Tensor) -> dict[str, tf.Tensor]:
        probability = tf.sigmoid(run(review))
        label = tf.where(probability >= 0.5, tf.constant("positive"), tf.constant("negative"))
        return {"probability": probability, "label": label}

    def token_ids(review: tf.Tensor) -> dict[str, tf.Tensor]:
        """The ids the model sees for each review: lets anyone check serving against training."""
        return vectorizer(review)

    def logit(review: tf.Tensor) -> dict[str, tf.Tensor]:
        """Log-odds of "positive": explanations compare these, as probabilities saturate at 0
        and 1."""
        return {"logit": run(review)}

    def tokens(review: tf.Tensor) -> dict[str, tf.Tensor]:
        """The review's tokens as the model reads them, right-padded with "" (no token is empty)."""
        return {TOKENS_NAME: tokenize(review).to_tensor(default_value="")}

    def token_logit(tokens: tf.Tensor) -> dict[str, tf.Tensor]:
        """logit of reviews given as tokens (as `tokens` returns them), through the same features:
        an explanation removes one token at a time without the text being tokenized again."""
        return {"logit": _flat(net(vectorizer.from_tokens(tokens), training=False))}

    return {
        "serving_default": (serve, reviews),
        "token_ids": (token_ids, reviews),
        "logit": (logit, reviews),
        "tokens": (tokens, reviews),
        "token_logit": (token_logit, [tf.TensorSpec([None, None], tf.string, name=TOKENS_NAME)]),
    }


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


class KernelLSTM(keras.layers.Layer):
    """A trained (Bidirectional) LSTM layer run by BlockLSTMV2, with that layer's own weights.

    Keras runs an LSTM on a CPU as a loop of small ops per time step, and on a few reviews their
    dispatch costs more than their arithmetic: one op for the whole sequence is 1.8 to 3 times as
    fast on 1 to 32 reviews (docs/lab/serving-rounds.md). BlockLSTMV2 is a standard TensorFlow
    op with Keras's gate order (i, f, c, o) and no mask: right padding never reaches the real
    steps of the forward direction, and the backward one reads each review reversed within its own
    length (reverse_sequence), so the outputs at real steps are the masked layer's to float
    rounding.
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.layer = layer
        self.supports_masking = True
        if isinstance(layer, keras.layers.Bidirectional):
            self.directions = [(layer.forward_layer, False), (layer.backward_layer, True)]
        else:
            self.directions = [(layer, False)]
        self.return_sequences = self.directions[0][0].return_sequences

    def call(self, x, mask):
        batch, steps = tf.shape(x)[0], tf.shape(x)[1]
        lengths = tf.reduce_sum(tf.cast(mask, "int32"), 1)  # the GloVe embedding masks padding
        outputs = []
        for lstm, backward in self.directions:
            cell, zeros = lstm.cell, tf.zeros([batch, lstm.units])
            seq = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0) if backward else x
            h = tf.raw_ops.BlockLSTMV2(
                seq_len_max=tf.cast(steps, tf.int64),
                x=tf.transpose(seq, [1, 0, 2]),
                cs_prev=zeros,
                h_prev=zeros,
                w=tf.concat([cell.kernel, cell.recurrent_kernel], 0),
                wci=tf.zeros([lstm.units]),  # no peepholes in a Keras LSTM
                wcf=tf.zeros([lstm.units]),
                wco=tf.zeros([lstm.units]),
                b=cell.bias,
                cell_clip=0.0,  # off
                use_peephole=False,
            ).h
            h = tf.transpose(h, [1, 0, 2])
            if not self.return_sequences:  # the state after the review's last real step
                last = tf.gather(h, tf.maximum(lengths - 1, 0), batch_dims=1)
                outputs.append(tf.where(lengths[:, None] > 0, last, 0.0))  # Keras's, if empty
            elif backward:
                outputs.append(tf.reverse_sequence(h, lengths, seq_axis=1, batch_axis=0))
            else:
                outputs.append(h)
        return tf.concat(outputs, -1)

    def compute_mask(self, x, mask=None):
        return mask if self.return_sequences else None


def kernel_lstms(model: keras.Model) -> keras.Model:
    """The same model, sharing every layer and weight with it, whose LSTM layers run as
    KernelLSTM."""
    return keras.models.clone_model(
        model,
        clone_function=lambda layer: (
            KernelLSTM(layer)
            if isinstance(layer, (keras.layers.Bidirectional, keras.layers.LSTM))
            else layer
        ),
    )


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
    card: str | None = None,
) -> Path:
    """Write the next numbered version atomically: TF Serving never sees a half-written one.
    `card`: the model card (Markdown), written as CARD_FILE beside model_info.json.

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
        write_warm_up_requests(tmp / WARM_UP_FILE)
        write_json(
            tmp / "model_info.json",
            {
                **info,
                "version": version,
                "signature": signature_contract(),
                "packages": package_versions(),
            },
        )
        if card is not None:
            (tmp / CARD_FILE).write_text(card, encoding="utf-8")
    log.info(f"export: {final}")
    return final


def predict_request(reviews: list, model_name: str = ""):
    """A Predict request of serving_default on the reviews, as TF Serving's gRPC API takes it."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "serving_default"
    request.inputs[INPUT_NAME].CopyFrom(
        tf.make_tensor_proto(reviews, dtype=tf.string, shape=[len(reviews)])
    )
    return request


def write_warm_up_requests(path: Path, reviews: list = WARM_UP_REVIEWS) -> None:
    """The reviews as one Predict request of serving_default, in the form TF Serving reads."""
    from tensorflow_serving.apis import prediction_log_pb2

    record = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=predict_request(reviews))
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(record.SerializeToString())


def warm_up_requests(version: Path) -> tuple[str, list[list[bytes]]]:
    """Where a version's warm-up requests come from, and the reviews of each, as TF Serving runs
    them (at most 1,000 records): its warm-up file, or WARM_UP_REVIEWS when it has none."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(version) / WARM_UP_FILE
    if not path.exists():
        return "built-in reviews", [WARM_UP_REVIEWS]
    requests = []
    for record in tf.data.TFRecordDataset(str(path)).take(1000).as_numpy_iterator():
        entry = prediction_log_pb2.PredictionLog.FromString(record)
        if entry.HasField("predict_log"):
            inputs = entry.predict_log.request.inputs[INPUT_NAME]
            requests.append(tf.make_ndarray(inputs).reshape(-1).tolist())
    return str(WARM_UP_FILE), requests


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
