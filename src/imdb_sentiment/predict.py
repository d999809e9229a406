"""Prediction with an exported SavedModel: load once, call on lists of raw strings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from .export import DEFAULT_EXPORT_DIR, INPUT_NAME, resolve_version


class Predictor:
    def __init__(self, model_dir: Path = DEFAULT_EXPORT_DIR):
        self.path = resolve_version(model_dir)
        self._loaded = tf.saved_model.load(str(self.path))
        self._serve = self._loaded.signatures["serving_default"]

    def predict(self, texts: list[str], batch_size: int = 256) -> list[dict]:
        """[{"label", "probability"}] per text, in input order.

        Texts of similar length are batched together, so short reviews are not padded to the
        length of a long one.
        """
        texts = list(texts)
        probability = np.empty(len(texts), np.float32)
        label = np.empty(len(texts), object)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for i in range(0, len(texts), batch_size):
            idx = order[i:i + batch_size]
            batch = tf.constant([texts[j].encode("utf-8", "replace") for j in idx], tf.string)
            out = self._serve(**{INPUT_NAME: batch})
            probability[idx] = out["probability"].numpy()
            label[idx] = [b.decode() for b in out["label"].numpy()]
        return [{"label": lab, "probability": float(p)} for lab, p in zip(label, probability)]
