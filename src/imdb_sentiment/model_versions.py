"""The served versions of one model folder: loading and warming up new versions while running,
as TF Serving does, one model call, and the signatures in TF Serving's metadata shape."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import tensorflow as tf
from tensorflow.core.framework import types_pb2

from .export import INPUT_NAME, versions, warm_up_requests
from .files import UserError
from .serving_requests import ClientError

log = logging.getLogger(__name__)


class ModelRepository:
    """The loaded versions of one model folder; reload() loads new versions and drops removed
    ones."""

    def __init__(self, base: Path, keep: int = 1):
        self.base = Path(base)
        self.keep = keep
        self._models: dict[int, object] = {}
        self._lock = threading.Lock()
        self.reload()
        if not self._models:
            raise UserError(
                f"{self.base}: no exported model here (expected <version>/saved_model.pb)"
            )

    def reload(self) -> None:
        wanted = versions(self.base)[-self.keep :]
        for v in wanted:
            if v not in self._models:
                path = self.base / str(v)
                loaded = tf.saved_model.load(str(path))
                warm_up(loaded, v, path)
                with self._lock:
                    self._models[v] = loaded
        with self._lock:
            for v in [v for v in self._models if v not in wanted]:
                del self._models[v]

    def get(self, version: int | None):
        with self._lock:
            if not self._models:
                raise ClientError(404, "no version of this model is loaded")
            if version is None:
                version = max(self._models)
            if version not in self._models:
                raise ClientError(
                    404,
                    f"version {version} of this model is not loaded; "
                    f"loaded: {sorted(self._models)}",
                )
            return version, self._models[version]

    def loaded_versions(self) -> list[int]:
        with self._lock:
            return sorted(self._models)


def warm_up(loaded, version: int, path: Path) -> None:
    """The version's warm-up requests, as TF Serving runs them, before the version is served; a
    model that fails on them is served anyway (its answers to real requests will tell)."""
    started = time.monotonic()
    try:
        source, requests = warm_up_requests(path)
        for reviews in requests:
            predict(loaded, reviews)
    except Exception as e:
        first = str(e).strip().splitlines()[:1]
        log.warning(f"version {version}: the warm-up call failed, served anyway: {first}")
        return
    log.info(
        f"version {version}: warmed up on {sum(map(len, requests))} reviews from {source} "
        f"in {time.monotonic() - started:.1f} s"
    )


def predict(loaded, reviews: list[bytes]) -> tuple[list[float], list[str]]:
    """One model call: the probabilities and labels of the reviews."""
    out = loaded.signatures["serving_default"](**{INPUT_NAME: tf.constant(reviews)})
    return out["probability"].numpy().tolist(), [b.decode() for b in out["label"].numpy()]


def signature_metadata(loaded) -> dict:
    """The serving signatures in the JSON shape of TF Serving's metadata answer."""

    def spec(t):
        dims = [{"size": str(-1 if d is None else d), "name": ""} for d in t.shape.as_list()]
        return {
            "dtype": types_pb2.DataType.Name(t.dtype.as_datatype_enum),
            "tensor_shape": {"dim": dims, "unknown_rank": False},
            "name": t.name or "",
        }

    out = {}
    for key, fn in loaded.signatures.items():
        out[key] = {
            "inputs": {k: spec(v) for k, v in fn.structured_input_signature[1].items()},
            "outputs": {k: spec(v) for k, v in fn.structured_outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }
    return {"signature_def": {"signature_def": out}}
