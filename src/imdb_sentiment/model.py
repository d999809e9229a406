"""The model: frozen GloVe embedding -> (Bi)LSTM -> pooling over time -> dropout -> sigmoid."""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


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
    return keras.layers.LSTM(units, return_sequences=return_sequences, activation="tanh",
                             recurrent_activation="sigmoid", recurrent_dropout=0.0, unroll=False,
                             use_bias=True)


def build_model(cfg, embedding_matrix: np.ndarray) -> keras.Model:
    vocab_size, dim = embedding_matrix.shape
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    inputs = {"token_ids": ids}
    embed = keras.layers.Embedding(vocab_size, dim, mask_zero=True, trainable=cfg.train_embeddings,
                                   name="glove")
    x = embed(ids)
    embed.set_weights([embedding_matrix])
    for i in range(cfg.lstm_layers):
        last = i == cfg.lstm_layers - 1
        layer = lstm_layer(cfg.lstm_units, return_sequences=not (last and cfg.pooling == "last"))
        x = keras.layers.Bidirectional(layer)(x) if cfg.bidirectional else layer(x)
    if cfg.pooling == "max_mean":
        x = MaskedMaxMeanPooling(name="pool")(x)
    x = keras.layers.Dropout(cfg.dropout)(x)
    # float32 logits: float16 would round probabilities near 0 and 1 under mixed precision.
    logit = keras.layers.Dense(1, dtype="float32", name="lstm_logit")(x)
    if cfg.ngram_buckets:
        # Wide part: the mean of one learned weight per hashed n-gram, added to the LSTM's logit.
        ngrams = keras.Input(shape=(None,), dtype="int32", name="ngram_ids")
        inputs["ngram_ids"] = ngrams
        weights = keras.layers.Embedding(cfg.ngram_buckets, 1, mask_zero=True, embeddings_initializer="zeros",
                                         name="ngram_weights")(ngrams)
        if cfg.ngram_dropout:  # dropping n-grams keeps the bag from memorising the training set alone
            weights = keras.layers.Dropout(cfg.ngram_dropout, name="ngram_dropout")(weights)
        wide = keras.layers.GlobalAveragePooling1D(name="ngram_mean")(weights)
        # Adam moves each weight by about the learning rate per step, so scaling the output by k
        # is a k-times learning rate for this part alone: a weight seen in few reviews must move far.
        wide = keras.layers.Rescaling(cfg.ngram_lr_scale, name="ngram_lr_scale")(wide)
        logit = keras.layers.Add(name="logit")([logit, wide])
    out = keras.layers.Activation("sigmoid", dtype="float32", name="probability")(logit)
    return keras.Model(inputs, out, name="imdb_sentiment")


def logit_model(model: keras.Model) -> keras.Model:
    """The same model without its final sigmoid: log-odds do not saturate at 0 and 1 as probabilities do."""
    return keras.Model(model.inputs, model.get_layer("probability").input, name="imdb_sentiment_logit")


def compile_model(model: keras.Model, cfg, steps_per_epoch: int = 1) -> keras.Model:
    lr = cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, cfg.epochs * steps_per_epoch))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr, clipnorm=cfg.clipnorm),
                  loss=keras.losses.BinaryCrossentropy(),
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
                  jit_compile=cfg.jit_compile)
    return model
