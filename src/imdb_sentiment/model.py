"""The model: frozen GloVe embedding -> (Bi)LSTM -> pooling over time -> dropout -> log-odds
(averaged over cfg.lstm_members such LSTMs), blended with the log-odds of a bag of n-grams
(bag.py) -> sigmoid.

Two parts, each fitted on its own: the LSTM by Adam on its own loss (lstm_model), the bag by
logistic regression outside the network, and the two log-odds then weighted by a blend fitted
on validation. Trained jointly, the bag fits the training reviews within two epochs and the
LSTM, left with no error to learn from, stays weak (docs/lab/experiments.md).
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
from keras import ops

from .text import NO_NGRAM_ID


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class MaskedMaxMeanPooling(keras.layers.Layer):
    """Max and mean over the real (unmasked) time steps, concatenated.

    Pooling sees every step of the review; the last LSTM state alone forgets its beginning.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        if mask is None:
            return ops.concatenate([ops.max(x, axis=1), ops.mean(x, axis=1)], axis=-1)
        m = ops.expand_dims(ops.cast(mask, x.dtype), -1)
        mean = ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)
        # LSTM outputs lie in (-1, 1): -2 is below any real value, so padding never wins the max.
        mx = ops.max(ops.where(m > 0, x, ops.full_like(x, -2.0)), axis=1)
        return ops.concatenate([mx, mean], axis=-1)

    def compute_mask(self, x, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[-1])


def lstm_layer(units: int, return_sequences: bool) -> keras.layers.LSTM:
    # These settings keep the layer on the fused cuDNN kernel when a GPU is present; anything else
    # (recurrent dropout above all) silently falls back to a kernel tens of times slower.
    return keras.layers.LSTM(
        units,
        return_sequences=return_sequences,
        activation="tanh",
        recurrent_activation="sigmoid",
        recurrent_dropout=0.0,
        unroll=False,
        use_bias=True,
    )


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class NgramBag(keras.layers.Layer):
    """Log-odds of a linear model over a review's distinct n-gram ids: the sum of one weight per id,
    divided by the square root of their number when `normalize` (the review's binary features are
    then a unit vector, as bag.features makes them), plus a bias. The weights are fitted by
    bag.fit_bag and stay frozen in the network."""

    def __init__(self, buckets: int, normalize: bool = False, **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.buckets = int(buckets)
        self.normalize = bool(normalize)  # False in models saved before it existed

    def build(self, input_shape):
        self.w = self.add_weight(
            shape=(self.buckets,), initializer="zeros", trainable=False, name="weights"
        )
        self.b = self.add_weight(shape=(), initializer="zeros", trainable=False, name="bias")

    def call(self, ids):
        # Padding's weight is 0, and so is the "no n-gram" id's, which is not counted either.
        total = ops.sum(ops.take(self.w, ids, axis=0), axis=1, keepdims=True)
        if self.normalize:
            count = ops.sum(ops.cast(ids > NO_NGRAM_ID, "float32"), axis=1, keepdims=True)
            total = total / ops.sqrt(ops.maximum(count, 1.0))
        return total + self.b

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "buckets": self.buckets, "normalize": self.normalize}


def lstm_tower(cfg, x, suffix: str = ""):
    """Embedded tokens -> (Bi)LSTM layers -> pooling over time -> dropout -> log-odds."""
    for i in range(cfg.lstm_layers):
        last = i == cfg.lstm_layers - 1
        layer = lstm_layer(cfg.lstm_units, return_sequences=not (last and cfg.pooling == "last"))
        x = keras.layers.Bidirectional(layer)(x) if cfg.bidirectional else layer(x)
    if cfg.pooling == "max_mean":
        x = MaskedMaxMeanPooling(name="pool" + suffix)(x)
    x = keras.layers.Dropout(cfg.dropout)(x)
    # float32 logits: float16 would round probabilities near 0 and 1 under mixed precision.
    return keras.layers.Dense(1, dtype="float32", name="lstm_logit" + suffix)(x)


def build_model(cfg, embedding_matrix: np.ndarray) -> keras.Model:
    vocab_size, dim = embedding_matrix.shape
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    inputs = {"token_ids": ids}
    embed = keras.layers.Embedding(
        vocab_size, dim, mask_zero=True, trainable=cfg.train_embeddings, name="glove"
    )
    x = embed(ids)
    embed.set_weights([embedding_matrix])
    if cfg.lstm_members == 1:
        logit = lstm_tower(cfg, x)
    else:
        # Members share only the frozen embedding, so each learns on its own loss (lstm_model)
        # from its own initial weights; their mean log-odds is the LSTM part's.
        members = [lstm_tower(cfg, x, f"_{k}") for k in range(cfg.lstm_members)]
        logit = keras.layers.Average(dtype="float32", name="lstm_logit")(members)
    if cfg.ngram_buckets:
        ngrams = keras.Input(shape=(None,), dtype="int32", name="ngram_ids")
        inputs["ngram_ids"] = ngrams
        parts = keras.layers.Concatenate(name="part_logits")(
            [logit, NgramBag(cfg.ngram_buckets, cfg.ngram_normalize, name="ngram_bag")(ngrams)]
        )
        # Frozen: fit_blend sets it from validation rows; trained on training rows it would trust
        # the bag alone.
        logit = keras.layers.Dense(
            1, dtype="float32", trainable=False, kernel_initializer="ones", name="blend"
        )(parts)
    out = keras.layers.Activation("sigmoid", dtype="float32", name="probability")(logit)
    return keras.Model(inputs, out, name="imdb_sentiment")


def member_logit_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Each LSTM member's log-odds layer: one, "lstm_logit", unless cfg.lstm_members > 1."""
    members = [layer for layer in model.layers if layer.name.startswith("lstm_logit_")]
    return members or [model.get_layer("lstm_logit")]


def lstm_model(model: keras.Model) -> keras.Model:
    """The LSTM part alone, sharing its layers with `model`: token ids -> P(positive) of each
    member (one column per member). Training fits this."""
    logits = [layer.output for layer in member_logit_layers(model)]
    if len(logits) > 1:
        logits = [keras.layers.Concatenate(dtype="float32")(logits)]
    p = keras.layers.Activation("sigmoid", dtype="float32", name="lstm_probability")(logits[0])
    ids = next(t for t in model.inputs if t.name == "token_ids")
    return keras.Model({"token_ids": ids}, p, name="imdb_sentiment_lstm")


def set_bag(model: keras.Model, weights: np.ndarray, bias: float) -> None:
    model.get_layer("ngram_bag").set_weights([weights, np.float32(bias)])


def set_blend(model: keras.Model, weights: np.ndarray, bias: float) -> None:
    model.get_layer("blend").set_weights(
        [np.asarray(weights, np.float32).reshape(2, 1), np.array([bias], np.float32)]
    )


def part_logits(model: keras.Model) -> keras.Model:
    """Both parts' log-odds, [LSTM, bag] per review: the blend's inputs."""
    return keras.Model(
        model.inputs, model.get_layer("part_logits").output, name="imdb_sentiment_parts"
    )


def scores_and_parts(model: keras.Model) -> tuple[keras.Model, list[str]]:
    """One pass for P(positive) and each part's log-odds: the columns of the returned model, and
    the parts' names (["lstm", "bag"], or ["lstm"] for a model without a bag)."""
    if any(layer.name == "part_logits" for layer in model.layers):
        parts, names = model.get_layer("part_logits").output, ["lstm", "bag"]
    else:  # no bag: the LSTM is the whole model
        parts, names = model.get_layer("lstm_logit").output, ["lstm"]
    return keras.Model(model.inputs, keras.layers.Concatenate()([model.output, parts])), names


def logit_model(model: keras.Model) -> keras.Model:
    """The same model without its final sigmoid: log-odds do not saturate at 0 and 1 as
    probabilities do."""
    return keras.Model(
        model.inputs, model.get_layer("probability").input, name="imdb_sentiment_logit"
    )


def as_float32(model: keras.Model, cudnn: bool = True) -> keras.Model:
    """The same model and weights computing in float32; the model itself when nothing changes.

    A GPU run trains under the mixed_float16 policy (train.setup_devices), and every layer built
    then computes in float16. Serving mostly runs on CPUs, where float16 moves the probabilities
    (and its speed depends on the CPU), so exports and run folders hold float32 models. Variables
    are float32 under either policy: the weights copy over exactly.

    cudnn=False also keeps the LSTM off the cuDNN kernel. A traced graph keeps the kernel chosen
    where it was traced, and the cuDNN op has no CPU kernel: a SavedModel exported on a GPU would
    not load on a CPU server (keras-team/keras#18504).
    """
    config = model.get_config()
    changed = _portable_config(config, cudnn)
    if changed == config:
        return model
    with float32_policy():  # for anything whose config names no policy
        clone = keras.Model.from_config(changed)
    clone.set_weights(model.get_weights())
    return clone


@contextlib.contextmanager
def float32_policy():
    """Layers built inside compute in float32, whatever the global policy."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _portable_config(config, cudnn: bool):
    """A copy of a model's config, every mixed dtype policy (nested layers too) set to float32, and
    every LSTM's use_cudnn to False unless cudnn."""
    if isinstance(config, list):
        return [_portable_config(c, cudnn) for c in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy" and config["config"]["name"].startswith("mixed_"):
        return {**config, "config": {**config["config"], "name": "float32"}}
    config = {k: _portable_config(v, cudnn) for k, v in config.items()}
    if config.get("class_name") == "LSTM" and not cudnn:
        config["config"] = {**config["config"], "use_cudnn": False}
    return config


def adam(cfg, peak_lr: float, steps: int) -> keras.optimizers.Adam:
    """Adam at peak_lr, decayed to 0 over `steps` when cfg.lr_schedule is "cosine"."""
    lr = peak_lr
    if cfg.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, steps))
    return keras.optimizers.Adam(learning_rate=lr, clipnorm=cfg.clipnorm)


def _flags_pairs(y_true) -> bool:
    """y_true is [rows, 2] of [label, first of a pair] (training with cfg.pair_margin), not
    [rows] or [rows, 1] of labels."""
    return len(y_true.shape) == 2 and y_true.shape[-1] == 2


def _labels(y_true):
    """The labels of a batch, one per row."""
    return y_true[:, 0] if _flags_pairs(y_true) else ops.reshape(y_true, (-1,))


def _log_odds(p):
    p = ops.clip(ops.cast(p, "float32"), 1e-7, 1.0 - 1e-7)
    return ops.log(p) - ops.log1p(-p)


@keras.saving.register_keras_serializable(package="imdb_sentiment")
def members_cross_entropy(y_true, y_pred):
    """Each member's cross-entropy on the label, averaged over the members (y_pred's columns): a
    member learns from its own errors, not from the average's."""
    y = ops.cast(_labels(y_true), y_pred.dtype)
    return keras.losses.binary_crossentropy(
        ops.broadcast_to(ops.reshape(y, (-1, 1)), ops.shape(y_pred)), y_pred
    )


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class PairedCrossEntropy(keras.losses.Loss):
    """members_cross_entropy and, for each minimal pair (two rows one after the other, the first
    flagged in y_true's second column), softplus(margin - (z_positive - z_negative)) for each
    member's log-odds z: the edit must move the log-odds by a clear margin, not only across 0."""

    def __init__(self, margin: float, name="paired_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)

    def call(self, y_true, y_pred):
        loss = members_cross_entropy(y_true, y_pred)
        if not _flags_pairs(y_true):
            return loss  # validation rows: no pairs
        label, first = ops.cast(y_true[:, 0], "float32"), ops.cast(y_true[:, 1], "float32")
        z = _log_odds(y_pred)
        apart = (z - ops.roll(z, -1, axis=0)) * ops.reshape(2.0 * label - 1.0, (-1, 1))
        pair = ops.mean(ops.softplus(self.margin - apart), axis=-1)
        # tf.distribute cuts a batch into one share per replica, and may cut a pair in two: its
        # first text then ends a share, whose first row the roll would make its partner.
        rows = ops.shape(z)[0]
        has_partner = ops.cast(ops.arange(rows) < rows - 1, "float32")
        return loss + ops.cast(first * has_partner * pair, loss.dtype)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


def ensemble_accuracy(y_true, y_pred):
    """Accuracy of the mean log-odds of y_pred's columns (each member's P(positive)); with one
    column, plain binary accuracy at 0.5."""
    logit = ops.mean(_log_odds(y_pred), axis=-1)
    truth = ops.cast(_labels(y_true), "float32") > 0.5
    return ops.cast(ops.equal(logit > 0, truth), "float32")


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class EnsembleAccuracy(keras.metrics.MeanMetricWrapper):
    """What early stopping watches: the LSTM part's accuracy, its members' log-odds averaged as
    the model averages them, not the mean of each member's accuracy."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(ensemble_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def compile_model(model: keras.Model, cfg, steps_per_epoch: int = 1) -> keras.Model:
    model.compile(
        optimizer=adam(cfg, cfg.learning_rate, cfg.epochs * steps_per_epoch),
        loss=PairedCrossEntropy(cfg.pair_margin) if cfg.pair_margin else members_cross_entropy,
        metrics=[EnsembleAccuracy()],
        jit_compile=cfg.jit_compile,
    )
    return model


def recurrent_encoders(model: keras.Model) -> list[dict[str, keras.layers.LSTM]]:
    """Each member's first recurrent layer, the one a pretrained encoder starts: {"forward": LSTM,
    "backward": LSTM}, or only "forward" for a unidirectional model."""
    return [
        {"forward": layer.forward_layer, "backward": layer.backward_layer}
        if isinstance(layer, keras.layers.Bidirectional)
        else {"forward": layer}
        for layer in _first_recurrent(model)
    ]


_RECURRENT = (keras.layers.Bidirectional, keras.layers.LSTM)


def _first_recurrent(model: keras.Model) -> list[keras.layers.Layer]:
    """Each member's first recurrent layer: the ones reading the GloVe vectors, in member order."""
    glove = model.get_layer("glove").output
    return [
        layer
        for layer in model.layers
        if isinstance(layer, _RECURRENT)
        and any(t is glove for t in keras.tree.flatten(layer.input))
    ]
