"""Prediction with an exported SavedModel: load once, call on lists of raw strings."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import tensorflow as tf

from .config import DEFAULT_EXPORT_DIR
from .export import INPUT_NAME, TOKENS_NAME, predict_request, resolve_version
from .files import UserError


class Predictor:
    def __init__(self, model_dir: Path = DEFAULT_EXPORT_DIR, loaded=None):
        """`loaded`: the version whose folder model_dir is, already loaded (a server's)."""
        if loaded is None:
            self.path = resolve_version(model_dir)
            loaded = tf.saved_model.load(str(self.path))
        else:
            self.path = Path(model_dir)
        self._loaded = loaded
        self._serve = self._loaded.signatures["serving_default"]

    def predict(self, texts: list[str], batch_size: int = 256) -> list[dict]:
        """[{"label", "probability"}] per text, in input order."""
        out = self._run(self._serve, texts, batch_size)
        return [
            {"label": lab.decode(), "probability": float(p)}
            for lab, p in zip(out["label"], out["probability"])
        ]

    def logits(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        """Log-odds of "positive" per text, in input order."""
        return self._run(self._signature("logit"), texts, batch_size)["logit"]

    def tokens(self, text: str) -> list[str]:
        """The text's tokens, as the model reads them."""
        row = self._signature("tokens")(**{INPUT_NAME: _strings([text])})[TOKENS_NAME].numpy()[0]
        return [t.decode("utf-8") for t in row if t]

    def token_logits(self, token_lists: list[list[str]], batch_size: int = 256) -> np.ndarray:
        """logits() of texts given as token lists (from tokens()), which are not tokenized again."""
        signature = self._signature("token_logit")
        return self._run(signature, token_lists, batch_size, TOKENS_NAME, _padded)["logit"]

    def _signature(self, name: str):
        if name not in self._loaded.signatures:
            raise UserError(
                f"{self.path} has no '{name}' signature: it was exported by an older "
                f"version; train and export it again with scripts/train.py"
            )
        return self._loaded.signatures[name]

    @staticmethod
    def _run(
        signature, rows: list, batch_size: int, name: str = INPUT_NAME, to_tensor=None
    ) -> dict[str, np.ndarray]:
        """Calls the signature batch by batch and puts its outputs back in input order.

        Rows (texts, or token lists) of similar length are batched together, so short reviews are
        not padded to the length of a long one.
        """
        rows, to_tensor = list(rows), to_tensor or _strings
        order = np.argsort([len(r) for r in rows], kind="stable")
        # Allocated from the signature, not from a first batch: no rows give empty outputs.
        out = {
            key: np.empty(len(rows), spec.dtype.as_numpy_dtype)
            for key, spec in signature.structured_outputs.items()
        }
        for i in range(0, len(rows), batch_size):
            idx = order[i : i + batch_size]
            for key, value in signature(**{name: to_tensor([rows[j] for j in idx])}).items():
                out[key][idx] = value.numpy()
        return out


def _strings(texts: list[str]) -> tf.Tensor:
    return tf.constant([t.encode("utf-8", "replace") for t in texts], tf.string)


def _padded(token_lists: list[list[str]]) -> tf.Tensor:
    """Token lists -> [batch, longest] strings right-padded with "": token_logit's input."""
    width = max(map(len, token_lists))
    rows = [[t.encode("utf-8") for t in row] + [b""] * (width - len(row)) for row in token_lists]
    return tf.constant(rows, tf.string, shape=[len(token_lists), width])


def remote_predictor(url: str, model_name: str = "imdb_sentiment", timeout: float = 30.0):
    """A predictor for a model server: grpc://host:port speaks TF Serving's gRPC API, any other
    URL its REST API."""
    if url.startswith("grpc://"):
        return GrpcPredictor(url.removeprefix("grpc://").rstrip("/"), model_name, timeout)
    return RemotePredictor(url, model_name, timeout)


class _ServerPredictor:
    """predict() for a model server: requests of batch_size reviews, one after the other."""

    def predict(self, texts: list[str], batch_size: int = 64) -> list[dict]:
        out = []
        for i in range(0, len(texts), batch_size):
            out += self._request(list(texts[i : i + batch_size]))
        return out


class GrpcPredictor(_ServerPredictor):
    """The same predict() through TF Serving's gRPC PredictionService (or scripts/serve.py
    --grpc-port)."""

    def __init__(self, target: str, model_name: str = "imdb_sentiment", timeout: float = 30.0):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.target, self.model_name, self.timeout = target, model_name, timeout
        self._error = grpc.RpcError
        self._channel = grpc.insecure_channel(
            target, options=[("grpc.max_receive_message_length", -1)]
        )
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def _request(self, texts: list[str]) -> list[dict]:
        try:
            return self.predict_batch(texts)
        except self._error as e:
            raise UserError(f"grpc://{self.target}: {e.code().name}: {e.details()}") from None

    def predict_batch(self, texts: list[str]) -> list[dict]:
        """One Predict call; a failed call raises grpc.RpcError (load_test counts them)."""
        resp = self._stub.Predict(predict_request(texts, self.model_name), timeout=self.timeout)
        prob = tf.make_ndarray(resp.outputs["probability"])
        label = tf.make_ndarray(resp.outputs["label"])
        return [{"label": lab.decode(), "probability": float(p)} for p, lab in zip(prob, label)]

    def close(self):
        self._channel.close()


class RemotePredictor(_ServerPredictor):
    """The same predict() through a TF Serving (or scripts/serve.py) REST endpoint."""

    def __init__(self, url: str, model_name: str = "imdb_sentiment", timeout: float = 30.0):
        self.endpoint = f"{url.rstrip('/')}/v1/models/{model_name}:predict"
        self.timeout = timeout

    def _request(self, texts: list[str]) -> list[dict]:
        preds = self._post({"instances": texts})["predictions"]
        return [{"label": p["label"], "probability": float(p["probability"])} for p in preds]

    def _post(self, body: dict) -> dict:
        req = urllib.request.Request(
            self.endpoint,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
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
