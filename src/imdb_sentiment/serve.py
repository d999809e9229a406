"""A small HTTP server that speaks TF Serving's REST API, for machines without TF Serving.

Routes (as TF Serving's): GET /v1/models/<name>[/versions/<v>] (status), GET .../metadata
(signatures), POST .../<name>[/versions/<v>]:predict with {"instances": [...]} (row format) or
{"inputs": ...} (columnar). Errors are {"error": "..."} with a 4xx code for the client's mistakes.
New version folders are picked up while running, as TF Serving does.

HTTP/1.1 on an asyncio event loop (Server), held to what a server meets in the open: a request's
framing is checked before anything else (a body that cannot be delimited closes the connection, so
its bytes are never read as the next request), reads and idle keep-alive connections time out,
open connections and requests waiting for the model are capped (503 with Retry-After beyond), a
500 tells the client only a request id that the server's log has with the traceback, and stop()
drains the requests in flight. Model calls run on threads of their own; with batching on,
concurrent predict requests are merged into one model call, as TF Serving's --enable_batching does
(Batcher).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from http import HTTPStatus
from pathlib import Path

import tensorflow as tf
from tensorflow.core.framework import types_pb2

from .export import INPUT_NAME, versions, warm_up_requests
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


def in_thread(loaded, reviews: list[bytes]) -> Future:
    """predict() on a thread of its own. A daemon thread: a call still running when the server has
    drained for its --drain-seconds must not hold the process's exit."""
    done = Future()

    def run():
        if not done.set_running_or_notify_cancel():
            return
        try:
            done.set_result(predict(loaded, reviews))
        except BaseException as e:
            done.set_exception(e)

    threading.Thread(target=run, daemon=True).start()
    return done


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

    def submit(self, loaded, reviews: list[bytes]) -> Future:
        """The request's outputs, to come: its rows of a batch's model call."""
        if len(reviews) > self.params.max_batch_size:
            return in_thread(loaded, reviews)
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
        return done

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
            # requests given up while they waited (a stopping server's) are left out
            requests = [(rs, d) for rs, d in batch.requests if d.set_running_or_notify_cancel()]
            log.debug(f"a batch of {batch.size} reviews from {len(requests)} requests")
            if not requests:
                continue
            try:
                prob, label = predict(batch.loaded, [r for rs, _ in requests for r in rs])
            except Exception as e:  # each request of the batch answers 500 with it
                for _, done in requests:
                    done.set_exception(e)
                continue
            start = 0
            for reviews, done in requests:
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

    def submit(self, loaded, reviews: list[bytes]) -> Future:
        """The outputs, to come, of a model call (or of a batch's) that runs on another thread, so
        that the event loop of the HTTP server never waits on the model."""
        if not self._slots.acquire(blocking=False):
            raise ClientError(
                503,
                f"{self.max_queued} requests are already waiting for the model; retry later",
                RETRY_AFTER_SECONDS,
            )
        try:
            done = (self._batcher.submit if self._batcher else in_thread)(loaded, reviews)
        except BaseException:
            self._slots.release()
            raise
        done.add_done_callback(lambda _: self._slots.release())
        return done

    def predict(self, loaded, reviews: list[bytes]) -> tuple[list[float], list[str]]:
        """submit(), waited for: for gRPC's handler threads."""
        return self.submit(loaded, reviews).result()


class Api:
    """TF Serving's REST routes over one model repository, apart from HTTP's framing."""

    def __init__(self, repo: ModelRepository, model_name: str, limits: Limits, calls: ModelCalls):
        self.repo = repo
        self.model_name = model_name
        self.limits = limits
        self.calls = calls

    def route(self, target: str) -> tuple[str | None, int | None]:
        m = _ROUTE.match(target.split("?")[0])
        if not m:
            raise ClientError(404, f"no such route: {target}")
        if m["name"] != self.model_name:
            raise ClientError(404, f"Servable not found for request: Latest({m['name']})")
        return m["rest"], int(m["version"]) if m["version"] else None

    def get(self, target: str) -> dict:
        rest, requested = self.route(target)
        if rest == ":predict":
            raise ClientError(405, "predict needs POST")
        version, loaded = self.repo.get(requested)
        if rest == "/metadata":
            return {
                "model_spec": {
                    "name": self.model_name,
                    "signature_name": "",
                    "version": str(version),
                },
                "metadata": signature_metadata(loaded),
            }
        shown = self.repo.loaded_versions() if requested is None else [version]
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

    async def post(self, target: str, read_body) -> dict:
        """read_body() gives the request's body once the route is known to take one."""
        rest, version = self.route(target)
        if rest != ":predict":
            raise ClientError(405, "only :predict takes POST")
        raw = await read_body()
        try:
            reviews, rows = parse_reviews(decode_json(raw), self.limits.max_batch)
        except RecursionError:
            # Deep nesting is the client's doing; json.loads and any walk of what it gave (a repr
            # in an error message) hit Python's recursion limit on it. Caught here, around both,
            # so the answer is a 400 rather than a 500 with a traceback in the log.
            raise ClientError(400, "the request's JSON is nested too deeply") from None
        _, loaded = self.repo.get(version)
        prob, label = await asyncio.wrap_future(self.calls.submit(loaded, reviews))
        if rows:
            return {
                "predictions": [{"probability": p, "label": lab} for p, lab in zip(prob, label)]
            }
        return {"outputs": {"probability": prob, "label": label}}


def decode_json(raw: bytes):
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ClientError(400, "the request body is not valid UTF-8") from None
    except json.JSONDecodeError as e:
        raise ClientError(400, f"JSON Parse error: {e.msg} at offset {e.pos}") from None


class Refused(ClientError):
    """A request whose framing cannot be trusted: answered, then the connection is closed, since
    the next request would start at an unknown byte."""


class Request:
    def __init__(self, line: str, headers: dict[str, list[str]]):
        self.line = line
        words = line.split()
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            raise Refused(400, f"bad request line {line[:100]!r}")
        self.method, self.target, self.version = words
        if not re.fullmatch(r"HTTP/1\.[01]", self.version):
            raise Refused(505, f"HTTP version {self.version[:20]!r} is not served; use HTTP/1.1")
        self.headers = headers
        tokens = ",".join(headers.get("connection", [])).lower()
        self.keep_alive = (
            "close" not in tokens if self.version == "HTTP/1.1" else "keep-alive" in tokens
        )

    def body_length(self) -> int:
        if "transfer-encoding" in self.headers:
            raise Refused(411, "send the body with a Content-Length, not chunked")
        values = self.headers.get("content-length", [])
        if not values:
            if self.method == "POST":
                raise Refused(411, "Content-Length is required")
            return 0
        if len(values) > 1 or not re.fullmatch(r"\d{1,15}", values[0]):
            raise Refused(400, f"malformed Content-Length: {', '.join(values)!r}")
        return int(values[0])


# What http.server allows a request's head: lines of 64 KiB, 100 header fields.
MAX_LINE = 1 << 16
MAX_HEADERS = 100


async def read_head(reader: asyncio.StreamReader, first: bytes) -> Request:
    """The request line and header fields, after the request's first byte."""
    try:
        line = first if first == b"\n" else first + await reader.readuntil(b"\n")
        while line in (b"\r\n", b"\n"):  # blank lines before a request are ignored (RFC 9112)
            line = await reader.readuntil(b"\n")
        headers: dict[str, list[str]] = {}
        for _ in range(MAX_HEADERS + 1):
            field = await reader.readuntil(b"\n")
            if field in (b"\r\n", b"\n"):
                return Request(line.decode("latin-1").strip(), headers)
            name, colon, value = field.decode("latin-1").partition(":")
            if not colon or not name or name != name.strip():  # also obsolete line folding
                raise Refused(400, f"malformed header field {field[:100]!r}")
            headers.setdefault(name.lower(), []).append(value.strip())
    except asyncio.LimitOverrunError:
        raise Refused(431, f"a line of the request's head is over {MAX_LINE} bytes") from None
    raise Refused(431, f"more than {MAX_HEADERS} header fields")


class Server:
    """TF Serving's REST API on an asyncio event loop: one thread holds every connection, so that
    many clients cost no thread each and no contention between threads for Python's lock
    (docs/lab/serving-rounds.md), and model calls run on other threads (ModelCalls).

    A request's framing is checked before anything else (a body that cannot be delimited closes
    the connection, so its bytes are never read as the next request), the head must come within
    read_timeout of its first byte, a body or an answer may not stall for read_timeout, keep-alive
    connections close after idle_timeout, connections beyond max_connections are answered 503 with
    Retry-After and closed, a 500 tells the client only a request id that the server's log has
    with the traceback, and stop() drains the requests in flight."""

    def __init__(self, address, api: Api, limits: Limits, access_log: bool = False):
        self.api = api
        self.limits = limits
        self.access_log = access_log
        self.stopping = False
        self._socket = socket.create_server(address, backlog=socket.SOMAXCONN)
        self.server_address = self._socket.getsockname()
        self._loop = asyncio.new_event_loop()
        self._shutdown = asyncio.Event()
        self._connections: dict[asyncio.Task, bool] = {}  # -> a request is being handled
        self._listener: asyncio.Server | None = None

    def serve_forever(self) -> None:
        """Serves until shutdown()."""
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._listener = await asyncio.start_server(
            self._connection, sock=self._socket, limit=MAX_LINE
        )
        await self._shutdown.wait()
        self._listener.close()  # no new connections

    def shutdown(self) -> None:
        """Makes serve_forever() return; safe from any thread and from a signal handler."""
        self._loop.call_soon_threadsafe(self._shutdown.set)

    def stop(self, drain_seconds: float) -> int:
        """After serve_forever() returned: closes idle connections and waits up to drain_seconds
        for the requests in flight; returns how many connections are left."""
        return self._loop.run_until_complete(self._drain(drain_seconds))

    async def _drain(self, seconds: float) -> int:
        self.stopping = True
        deadline = self._loop.time() + seconds
        for task, busy in list(self._connections.items()):
            if not busy:
                task.cancel()
        while self._connections and self._loop.time() < deadline:
            await asyncio.sleep(0.05)
        left = list(self._connections)
        for task in left:  # closes their connections; what their model calls give is dropped
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        return len(left)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        if len(self._connections) >= self.limits.max_connections:
            answer = response(
                503,
                {"error": f"{self.limits.max_connections} connections are open; retry later"},
                RETRY_AFTER_SECONDS,
                close=True,
            )
            writer.write(answer)
            writer.close()
            return
        task = asyncio.current_task()
        self._connections[task] = False
        client = (writer.get_extra_info("peername") or ("-",))[0]
        try:
            while not self.stopping:
                try:  # the idle timeout runs until a request's first byte
                    async with asyncio.timeout(self.limits.idle_timeout):
                        first = await reader.readexactly(1)
                except (asyncio.IncompleteReadError, TimeoutError):
                    break
                if self.stopping:
                    break
                self._connections[task] = True
                keep = await self._request(reader, writer, first, client)
                self._connections[task] = False
                if not keep:
                    break
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as e:
            log.debug(f"{client}: {type(e).__name__}: {e}")  # a client gone, or silent too long
        finally:
            del self._connections[task]
            writer.close()

    async def _request(self, reader, writer, first: bytes, client: str) -> bool:
        """Reads and answers one request; whether the connection may carry another."""
        started = time.monotonic()
        unread: int | None = None  # bytes of the body not read yet; None: unknown
        line, status, retry_after = "-", 200, None
        limits = self.limits

        async def read(n: int) -> bytes:
            """Up to n bytes, each part within the read timeout."""
            async with asyncio.timeout(limits.read_timeout):
                return await reader.read(n)

        async def read_body() -> bytes:
            nonlocal unread
            if unread > limits.max_body:
                raise ClientError(
                    413, f"request body of {unread} bytes is over the limit of {limits.max_body}"
                )
            parts = []
            while unread > 0:
                chunk = await read(unread)
                if not chunk:
                    unread = None
                    raise ClientError(400, "the request body ended before its Content-Length")
                parts.append(chunk)
                unread -= len(chunk)
            return b"".join(parts)

        request = None
        try:
            async with asyncio.timeout(limits.read_timeout):
                request = await read_head(reader, first)
            line = request.line
            unread = request.body_length()
            if request.version == "HTTP/1.1" and any(
                v.lower() == "100-continue" for v in request.headers.get("expect", [])
            ):
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it
            if request.method == "GET":
                obj = self.api.get(request.target)
            elif request.method == "POST":
                obj = await self.api.post(request.target, read_body)
            else:
                raise ClientError(501, f"unsupported method {request.method!r}")
        except ClientError as e:
            if isinstance(e, Refused):
                unread = None
            status, obj, retry_after = e.status, {"error": str(e)}, e.retry_after
        except TimeoutError:
            if request is None:  # a head that never ended: nothing to answer
                return False
            unread = None
            status, obj = 408, {"error": f"no data for {limits.read_timeout} s"}
        except (OSError, asyncio.IncompleteReadError):
            return False
        except Exception:  # a bug must cost one request, never the server
            request_id = uuid.uuid4().hex[:12]
            log.exception(f"request id {request_id}: {line!r} failed")
            status, obj = 500, {"error": f"internal error, request id {request_id}"}
        if unread is not None and 0 < unread <= DRAIN_FACTOR * limits.max_body:
            # what is left of a body an error left unread, so the connection can carry the next
            # request; one too large to read is left for the connection's close
            try:
                while unread > 0 and (chunk := await read(min(unread, 1 << 20))):
                    unread -= len(chunk)
            except TimeoutError:
                unread = None
        keep = unread == 0 and request is not None and request.keep_alive and not self.stopping
        writer.write(response(status, obj, retry_after, close=not keep))
        if self.access_log:
            ms = (time.monotonic() - started) * 1000
            log.info(f'{client} "{line}" {status} {ms:.1f} ms')
        async with asyncio.timeout(limits.read_timeout):
            await writer.drain()
        if unread != 0:
            await linger(reader, writer)
        return keep


@functools.lru_cache(maxsize=1)
def http_date(second: int) -> str:
    """A second as the Date header gives it; made once for all the answers within it."""
    return email.utils.formatdate(second, usegmt=True)


def response(status: int, obj: dict, retry_after: int | None = None, close: bool = False) -> bytes:
    """A JSON answer, head and body in one write (one system call, and nothing for Nagle's
    algorithm to hold back until the client's delayed ACK)."""
    body = json.dumps(obj).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nServer: imdb-sentiment\r\n"
        f"Date: {http_date(int(time.time()))}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    if retry_after is not None:
        head += f"Retry-After: {retry_after}\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode() + body


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Ends our side of a connection and reads what the client still sends, for a moment, so that
    closing it does not reset the answer away (Apache's "lingering close")."""
    try:
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(LINGER_SECONDS):
            while await reader.read(1 << 16):
                pass
    except (OSError, TimeoutError):
        pass


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
    server = Server((host, port), Api(repo, model_name, limits, calls), limits, access_log)

    def poll():
        while True:
            time.sleep(poll_seconds)
            try:
                repo.reload()
            except Exception as e:  # a broken new version must not take the served one down
                log.warning(f"reload failed, still serving {repo.loaded_versions()}: {e}")

    threading.Thread(target=poll, daemon=True).start()
    return server, repo, calls
