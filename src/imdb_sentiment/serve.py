"""A small HTTP server that speaks TF Serving's REST API, for machines without TF Serving.

Routes (as TF Serving's): GET /v1/models/<name>[/versions/<v>] (status), GET .../metadata
(signatures), POST .../<name>[/versions/<v>]:predict with {"instances": [...]} (row format) or
{"inputs": ...} (columnar). Errors are {"error": "..."} with a 4xx code for the client's mistakes.
New version folders are picked up while running, as TF Serving does.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import tensorflow as tf
from tensorflow.core.framework import types_pb2

from .export import INPUT_NAME, versions
from .files import UserError

log = logging.getLogger(__name__)

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<rest>/metadata|:predict)?$"
)


class ClientError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


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
                loaded = tf.saved_model.load(str(self.base / str(v)))
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


def parse_reviews(body: dict, max_batch: int) -> tuple[list[str], bool]:
    """The review strings of a predict request, and whether it used the row ("instances") format."""
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise ClientError(
            400, 'the request must be a JSON object with exactly one of "instances" or "inputs"'
        )
    if body.get("signature_name", "serving_default") != "serving_default":
        raise ClientError(
            400,
            f"unknown signature_name {body['signature_name']!r}; this model has serving_default",
        )
    rows = "instances" in body
    data = body["instances"] if rows else body["inputs"]
    if isinstance(data, dict):  # named inputs: {"review": [...]}
        if set(data) != {INPUT_NAME}:
            raise ClientError(400, f"the only input is {INPUT_NAME!r}; got {sorted(data)}")
        data = data[INPUT_NAME]
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, list):
        raise ClientError(400, "expected a list of review strings")
    reviews = [d[INPUT_NAME] if isinstance(d, dict) and set(d) == {INPUT_NAME} else d for d in data]
    if not all(isinstance(r, str) for r in reviews):
        raise ClientError(400, f"every instance must be a string (or {{{INPUT_NAME!r}: string}})")
    if not reviews:
        raise ClientError(400, "no instances given")
    if len(reviews) > max_batch:
        raise ClientError(400, f"{len(reviews)} instances in one request; the limit is {max_batch}")
    return reviews, rows


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


def make_handler(repo: ModelRepository, model_name: str, max_body: int, max_batch: int):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "imdb-sentiment"

        def log_message(self, fmt, *args):  # one line per request is noise under load
            pass

        def reply(self, status: int, obj: dict) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def route(self):
            m = _ROUTE.match(self.path.split("?")[0])
            if not m:
                raise ClientError(404, f"no such route: {self.path}")
            if m["name"] != model_name:
                raise ClientError(404, f"Servable not found for request: Latest({m['name']})")
            return m["rest"], int(m["version"]) if m["version"] else None

        def do_GET(self):
            self.handle_safely(self.get)

        def do_POST(self):
            self.handle_safely(self.post)

        def handle_safely(self, fn):
            try:
                self.reply(200, fn())
            except ClientError as e:
                self.reply(e.status, {"error": str(e)})
            except Exception as e:  # a bug must cost one request, never the server
                self.reply(500, {"error": f"internal error: {type(e).__name__}: {e}"})

        def get(self):
            rest, requested = self.route()
            if rest == ":predict":
                raise ClientError(405, "predict needs POST")
            version, loaded = repo.get(requested)
            if rest == "/metadata":
                return {
                    "model_spec": {
                        "name": model_name,
                        "signature_name": "",
                        "version": str(version),
                    },
                    "metadata": signature_metadata(loaded),
                }
            shown = repo.loaded_versions() if requested is None else [version]
            return {
                "model_version_status": [
                    {
                        "version": str(v),
                        "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""},
                    }
                    for v in shown
                ]
            }

        def read_body(self) -> dict:
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                raise ClientError(411, "Content-Length is required") from None
            if length > max_body:
                # Drain a moderately large body so the client can read our answer; close on a
                # huge one.
                if length <= 8 * max_body:
                    left = length
                    while left > 0:
                        chunk = self.rfile.read(min(left, 1 << 20))
                        if not chunk:  # the client hung up
                            break
                        left -= len(chunk)
                else:
                    self.close_connection = True
                raise ClientError(
                    413, f"request body of {length} bytes is over the limit of {max_body}"
                )
            raw = self.rfile.read(length)
            try:
                return json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise ClientError(400, "the request body is not valid UTF-8") from None
            except json.JSONDecodeError as e:
                raise ClientError(400, f"JSON Parse error: {e.msg} at offset {e.pos}") from None

        def post(self):
            rest, version = self.route()
            if rest != ":predict":
                raise ClientError(405, "only :predict takes POST")
            reviews, rows = parse_reviews(self.read_body(), max_batch)
            _, loaded = repo.get(version)
            out = loaded.signatures["serving_default"](**{INPUT_NAME: tf.constant(reviews)})
            prob = out["probability"].numpy().tolist()
            label = [b.decode() for b in out["label"].numpy()]
            if rows:
                return {
                    "predictions": [{"probability": p, "label": lab} for p, lab in zip(prob, label)]
                }
            return {"outputs": {"probability": prob, "label": label}}

    return Handler


def make_server(
    model_dir: Path,
    model_name: str = "imdb_sentiment",
    host: str = "127.0.0.1",
    port: int = 8501,
    max_body: int = 8 << 20,
    max_batch: int = 1024,
    poll_seconds: float = 2.0,
):
    repo = ModelRepository(model_dir)
    server = ThreadingHTTPServer((host, port), make_handler(repo, model_name, max_body, max_batch))
    server.daemon_threads = True

    def poll():
        while True:
            time.sleep(poll_seconds)
            try:
                repo.reload()
            except Exception as e:  # a broken new version must not take the served one down
                log.warning(f"reload failed, still serving {repo.loaded_versions()}: {e}")

    threading.Thread(target=poll, daemon=True).start()
    return server, repo
