"""Token-id features as tf.data rows, and a model's predictions over them in batches.

Training (its length-bucketed batches), evaluation and the benchmark all read features this way.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .progress import bar


def rows(features: dict, labels=None) -> tf.data.Dataset:
    """Elements {name: dense 1-D ids} (, label); slicing RaggedTensors would yield ragged
    elements."""
    flat = {k: v.flat_values for k, v in features.items()}
    spans = {k: (v.row_starts(), v.row_lengths()) for k, v in features.items()}
    ds = tf.data.Dataset.from_tensor_slices(spans if labels is None else (spans, labels))

    def cut(spans, *label):
        x = {k: flat[k][start : start + n] for k, (start, n) in spans.items()}
        return (x, *label) if label else x

    return ds.map(cut, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def predict_features(model: keras.Model, features: dict, batch_size: int = 256) -> np.ndarray:
    """The model's outputs [reviews, outputs] in input order; batches are formed from length-sorted
    rows to save padding."""
    order = np.argsort(features["token_ids"].row_lengths().numpy(), kind="stable")
    ds = rows({k: tf.gather(v, order) for k, v in features.items()}).padded_batch(batch_size)
    with bar(total=len(order), desc="predicting") as progress:
        done = keras.callbacks.LambdaCallback(
            on_predict_batch_end=lambda batch, logs: progress.update(
                len(keras.tree.flatten(logs["outputs"])[0])
            )
        )
        p = model.predict(ds.prefetch(tf.data.AUTOTUNE), verbose=0, callbacks=[done])
    out = np.empty_like(p)
    out[order] = p
    return out
