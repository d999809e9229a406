"""Prediction with an exported SavedModel: load once, call on lists of raw strings."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import tensorflow as tf

from .config import DEFAULT_EXPORT_DIR
from .export import INPUT_NAME, resolve_version
from .io import UserError


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


class RemotePredictor:
    """The same predict() through a TF Serving (or scripts/serve.py) REST endpoint."""

    def __init__(self, url: str, model_name: str = "imdb_sentiment", timeout: float = 30.0):
        self.endpoint = f"{url.rstrip('/')}/v1/models/{model_name}:predict"
        self.timeout = timeout

    def predict(self, texts: list[str], batch_size: int = 64) -> list[dict]:
        out = []
        for i in range(0, len(texts), batch_size):
            preds = self._post({"instances": list(texts[i:i + batch_size])})["predictions"]
            out += [{"label": p["label"], "probability": float(p["probability"])} for p in preds]
        return out

    def _post(self, body: dict) -> dict:
        req = urllib.request.Request(self.endpoint, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            try:
                detail = json.loads(e.read()).get("error", "")
            except ValueError:
                detail = e.reason
            raise UserError(f"{self.endpoint}: HTTP {e.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(f"cannot reach the model server at {self.endpoint}: {reason}") from None
