"""A small HTTP server that speaks TF Serving's REST API, for machines without TF Serving.

Routes (as TF Serving's): GET /v1/models/<name>[/versions/<v>] (status), GET .../metadata
(signatures), POST .../<name>[/versions/<v>]:predict with {"instances": [...]} (row format) or
{"inputs": ...} (columnar). Errors are {"error": "..."} with a 4xx code for the client's mistakes.
New version folders are picked up while running, as TF Serving does.

The standard library's HTTP server, held to what a server meets in the open: a request's framing
is checked before anything else (a body that cannot be delimited closes the connection, so its
bytes are never read as the next request), reads and idle keep-alive connections time out, open
connections and requests waiting for the model are capped (503 with Retry-After beyond), a 500
tells the client only a request id that the server's log has with the traceback, and stop()
drains the requests in flight. With batching on, concurrent predict requests are merged into one
model call, as TF Serving's --enable_batching does (Batcher).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import tensorflow as tf
from tensorflow.core.framework import types_pb2

from .export import INPUT_NAME, versions
from .files import UserError
from .serving_config import BatchingParameters, Limits

log = logging.getLogger(__name__)

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<rest>/metadata|:predict)?$"
)


# A body over the limit is still read and thrown away up to this many times the limit, so that the
# client, which sends it all before it reads, gets the 413; beyond that the connection is closed.
DRAIN_FACTOR = 8
# How long a closing connection still reads what the client sends: closing with unread bytes makes
# the kernel send a reset, which can destroy the answer before the client reads it.
LINGER_SECONDS = 1.0
RETRY_AFTER_SECONDS = 1


class ClientError(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


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


def check_count(reviews: list, max_batch: int) -> None:
    """Refuses a request of no review or of more than max_batch."""
    if not reviews:
        raise ClientError(400, "no instances given")
    if len(reviews) > max_batch:
        raise ClientError(400, f"{len(reviews)} instances in one request; the limit is {max_batch}")


def parse_reviews(body: dict, max_batch: int) -> tuple[list[bytes], bool]:
    """The reviews of a predict request as UTF-8, and whether it used the row ("instances")
    format."""
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
    check_count(reviews, max_batch)
    try:  # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 string holds
        return [r.encode("utf-8") for r in reviews], rows
    except UnicodeEncodeError as e:
        raise ClientError(400, f"an instance is not valid Unicode: {e.reason}") from None


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


def predict(loaded, reviews: list[bytes]) -> tuple[list[float], list[str]]:
    """One model call: the probabilities and labels of the reviews."""
    out = loaded.signatures["serving_default"](**{INPUT_NAME: tf.constant(reviews)})
    return out["probability"].numpy().tolist(), [b.decode() for b in out["label"].numpy()]


class _Batch:
    def __init__(self, loaded):
        self.loaded = loaded
        self.opened = time.monotonic()
        self.size = 0
        self.requests: list[tuple[list[bytes], Future]] = []


class Batcher:
    """Merges concurrent predict requests into one model call, with TF Serving's batching
    parameters: a batch runs once it holds max_batch_size reviews, once a request does not fit in
    it, or batch_timeout_micros after it opened, on one of num_batch_threads threads; beyond
    max_enqueued_batches waiting, requests are refused (503). A request larger than
    max_batch_size runs on its own. Each request gets its own rows of the outputs back."""

    def __init__(self, params: BatchingParameters):
        self.params = params
        self._queue: deque[_Batch] = deque()  # oldest first; only the newest takes requests
        self._changed = threading.Condition()
        for _ in range(params.num_batch_threads):
            threading.Thread(target=self._work, daemon=True).start()

    def predict(self, loaded, reviews: list[bytes]) -> tuple[list[float], list[str]]:
        if len(reviews) > self.params.max_batch_size:
            return predict(loaded, reviews)
        done = Future()
        with self._changed:
            batch = self._queue[-1] if self._queue else None
            if (
                batch is None
                or batch.loaded is not loaded
                or batch.size + len(reviews) > self.params.max_batch_size
            ):
                if len(self._queue) >= self.params.max_enqueued_batches:
                    raise ClientError(
                        503,
                        f"{len(self._queue)} batches are waiting for the model; retry later",
                        RETRY_AFTER_SECONDS,
                    )
                batch = _Batch(loaded)
                self._queue.append(batch)
            batch.requests.append((reviews, done))
            batch.size += len(reviews)
            self._changed.notify()
        return done.result()

    def _next(self) -> _Batch:
        timeout = self.params.batch_timeout_micros / 1e6
        with self._changed:
            while True:
                if self._queue:
                    first = self._queue[0]
                    wait = first.opened + timeout - time.monotonic()
                    full = first.size >= self.params.max_batch_size or len(self._queue) > 1
                    if full or wait <= 0:
                        return self._queue.popleft()
                    self._changed.wait(wait)
                else:
                    self._changed.wait()

    def _work(self) -> None:
        while True:
            batch = self._next()
            log.debug(f"a batch of {batch.size} reviews from {len(batch.requests)} requests")
            try:
                prob, label = predict(batch.loaded, [r for rs, _ in batch.requests for r in rs])
            except Exception as e:  # each request of the batch answers 500 with it
                for _, done in batch.requests:
                    done.set_exception(e)
                continue
            start = 0
            for reviews, done in batch.requests:
                end = start + len(reviews)
                done.set_result((prob[start:end], label[start:end]))
                start = end


class ModelCalls:
    """The predict calls of every front end (REST and gRPC) alike: at most max_queued waiting for
    or in the model, more refused with 503; through the Batcher when batching is on, so that
    requests from both merge into one model call."""

    def __init__(self, max_queued: int, batcher: Batcher | None = None):
        self.max_queued = max_queued
        self._slots = threading.BoundedSemaphore(max_queued)
        self._batcher = batcher

    def predict(self, loaded, reviews: list[bytes]) -> tuple[list[float], list[str]]:
        if not self._slots.acquire(blocking=False):
            raise ClientError(
                503,
                f"{self.max_queued} requests are already waiting for the model; retry later",
                RETRY_AFTER_SECONDS,
            )
        try:
            return (self._batcher.predict if self._batcher else predict)(loaded, reviews)
        finally:
            self._slots.release()


def make_handler(
    repo: ModelRepository, model_name: str, limits: Limits, access_log: bool, calls: ModelCalls
):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "imdb-sentiment"
        # An answer leaves in one write when its request is done (the base class flushes then):
        # each system call lets another of the handler threads take Python's lock, and under load
        # every handover delays the next batch (docs/serving.md). A longer answer leaves in several
        # writes, and with Nagle's algorithm each waited for the client's delayed ACK (40 ms).
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        # Bytes of the current request's body not read yet: None when unknown (its framing was
        # refused, or a read failed), so the connection must close after the answer.
        unread: int | None = 0

        def handle_one_request(self):
            # The idle timeout runs until a request's first byte, the read timeout after it.
            try:
                self.connection.settimeout(limits.idle_timeout)
                started = bool(self.rfile.peek(1))
            except OSError:  # the idle timeout, or a connection reset
                started = False
            if not started or not self.server.begin_request(self.connection):
                self.close_connection = True
                return
            self.started = time.monotonic()
            self.unread = 0
            self.connection.settimeout(limits.read_timeout)
            try:
                super().handle_one_request()
            finally:
                if self.server.end_request(self.connection):
                    self.close_connection = True

        def handle_expect_100(self):
            super().handle_expect_100()
            self.wfile.flush()  # the client waits for it before it sends the body
            return True

        def finish(self):
            super().finish()
            if self.unread != 0:
                linger(self.connection)

        def log_request(self, code="-", size="-"):
            if access_log:
                ms = (time.monotonic() - self.started) * 1000
                log.info(f'{self.client_address[0]} "{self.requestline}" {code} {ms:.1f} ms')

        def log_error(self, fmt, *args):  # timeouts and malformed request lines
            log.debug(f"{self.client_address[0]}: {fmt % args}")

        def reply(self, status: int, obj: dict, retry_after: int | None = None) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if retry_after is not None:
                self.send_header("Retry-After", str(retry_after))
            if self.unread != 0 or self.server.stopping:
                self.send_header("Connection", "close")  # also sets close_connection
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
            retry_after = None
            try:
                self.unread = self.body_length()
                status, obj = 200, fn()
            except ClientError as e:
                status, obj, retry_after = e.status, {"error": str(e)}, e.retry_after
            except TimeoutError:
                self.unread = None
                status, obj = 408, {"error": f"no data for {limits.read_timeout} s"}
            except Exception:  # a bug must cost one request, never the server
                request_id = uuid.uuid4().hex[:12]
                log.exception(f"request id {request_id}: {self.requestline!r} failed")
                status, obj = 500, {"error": f"internal error, request id {request_id}"}
            self.discard_body()
            self.reply(status, obj, retry_after)

        def body_length(self) -> int:
            """The request body's length; where it cannot be known, the request is refused and
            the connection closed, since the next request would start at an unknown byte."""
            if "Transfer-Encoding" in self.headers:
                self.unread = None
                raise ClientError(411, "send the body with a Content-Length, not chunked")
            values = self.headers.get_all("Content-Length") or []
            if not values:
                if self.command == "POST":
                    self.unread = None
                    raise ClientError(411, "Content-Length is required")
                return 0
            if len(values) > 1 or not re.fullmatch(r"\d{1,15}", values[0].strip()):
                self.unread = None
                raise ClientError(400, f"malformed Content-Length: {', '.join(values)!r}")
            return int(values[0])

        def discard_body(self) -> None:
            """Reads what is left of a body an error left unread, so the connection can carry the
            next request; one too large to read is left for the connection's close."""
            if self.unread is None or self.unread > DRAIN_FACTOR * limits.max_body:
                return
            try:
                while self.unread > 0:
                    chunk = self.rfile.read(min(self.unread, 1 << 20))
                    if not chunk:  # the client hung up
                        break
                    self.unread -= len(chunk)
            except OSError:
                self.unread = None

        def read_body(self) -> dict:
            if self.unread > limits.max_body:
                raise ClientError(
                    413,
                    f"request body of {self.unread} bytes is over the limit of {limits.max_body}",
                )
            raw = self.rfile.read(self.unread)
            if len(raw) < self.unread:
                self.unread = None
                raise ClientError(400, "the request body ended before its Content-Length")
            self.unread = 0
            try:
                return json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise ClientError(400, "the request body is not valid UTF-8") from None
            except json.JSONDecodeError as e:
                raise ClientError(400, f"JSON Parse error: {e.msg} at offset {e.pos}") from None

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

        def post(self):
            rest, version = self.route()
            if rest != ":predict":
                raise ClientError(405, "only :predict takes POST")
            reviews, rows = parse_reviews(self.read_body(), limits.max_batch)
            _, loaded = repo.get(version)
            prob, label = calls.predict(loaded, reviews)
            if rows:
                return {
                    "predictions": [{"probability": p, "label": lab} for p, lab in zip(prob, label)]
                }
            return {"outputs": {"probability": prob, "label": label}}

    return Handler


def linger(sock: socket.socket) -> None:
    """Ends our side of a connection and reads what the client still sends, for a moment, so that
    closing it does not reset the answer away (Apache's "lingering close")."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(LINGER_SECONDS)
        deadline = time.monotonic() + LINGER_SECONDS
        while time.monotonic() < deadline and sock.recv(1 << 16):
            pass
    except OSError:
        pass


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a cap on open connections, answered 503 from the accepting thread
    (no thread is started for them), and a stop that drains the requests in flight."""

    daemon_threads = True
    # The listen backlog. socketserver's 5 is too short for clients that connect at once: with
    # 128 of them, connections beyond it waited in SYN retries and some were reset. Connections
    # over the cap are accepted and answered 503 below, so a long backlog costs nothing.
    request_queue_size = socket.SOMAXCONN
    block_on_close = False  # stop() waits, bounded, for requests; idle clients are not waited on

    def __init__(self, address, handler, limits: Limits):
        self.limits = limits
        self.stopping = False
        self._connections: dict[socket.socket, bool] = {}  # -> a request is being handled
        self._changed = threading.Condition()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self._changed:
            full = len(self._connections) >= self.limits.max_connections
            if not full:
                self._connections[request] = False
        if not full:
            super().process_request(request, client_address)
            return
        body = json.dumps(
            {"error": f"{self.limits.max_connections} connections are open; retry later"}
        ).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER_SECONDS}\r\n"
            "Connection: close\r\n\r\n"
        )
        try:
            request.settimeout(LINGER_SECONDS)  # the accepting thread must not wait on a client
            request.sendall(head.encode() + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._changed:
                del self._connections[request]
                self._changed.notify_all()

    def handle_error(self, request, client_address):  # a client that went away mid-answer
        log.debug(f"connection from {client_address[0]} failed", exc_info=True)

    def begin_request(self, sock) -> bool:
        """Marks a connection busy as its next request starts; False once stopping."""
        with self._changed:
            if self.stopping:
                return False
            self._connections[sock] = True
            return True

    def end_request(self, sock) -> bool:
        """Marks a connection idle after its request; True when it should close (stopping)."""
        with self._changed:
            self._connections[sock] = False
            return self.stopping

    def stop(self, drain_seconds: float) -> int:
        """After serve_forever() returned: refuses new connections, closes idle ones, and waits up
        to drain_seconds for the requests in flight; returns how many connections are left."""
        self.server_close()
        deadline = time.monotonic() + drain_seconds
        with self._changed:
            self.stopping = True
            for sock, busy in self._connections.items():
                if not busy:
                    try:  # wakes the thread waiting for this connection's next request
                        sock.shutdown(socket.SHUT_RD)
                    except OSError:
                        pass
            while self._connections and deadline > time.monotonic():
                self._changed.wait(deadline - time.monotonic())
            return len(self._connections)


def make_server(
    model_dir: Path,
    model_name: str = "imdb_sentiment",
    host: str = "127.0.0.1",
    port: int = 8501,
    limits: Limits = Limits(),
    poll_seconds: float = 2.0,
    access_log: bool = False,
    batching: BatchingParameters | None = None,
):
    """The server (not started: call serve_forever), its model repository and the model calls
    (for a gRPC server beside it to share); `batching` turns on request batching."""
    repo = ModelRepository(model_dir)
    calls = ModelCalls(limits.max_queued, Batcher(batching) if batching else None)
    server = Server((host, port), make_handler(repo, model_name, limits, access_log, calls), limits)

    def poll():
        while True:
            time.sleep(poll_seconds)
            try:
                repo.reload()
            except Exception as e:  # a broken new version must not take the served one down
                log.warning(f"reload failed, still serving {repo.loaded_versions()}: {e}")

    threading.Thread(target=poll, daemon=True).start()
    return server, repo, calls
