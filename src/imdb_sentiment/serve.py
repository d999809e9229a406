"""TF Serving's REST API, for machines without TF Serving: its routes (Api), the HTTP/1.1 server
on an asyncio event loop that carries them (Server), and make_server, which joins them to a model
folder's versions and the model calls. The routes are TF Serving's: GET /v1/models/<name>
[/versions/<v>] (status), GET .../metadata (signatures), POST .../<name>[/versions/<v>]:predict
with {"instances": [...]} (row format) or {"inputs": ...} (columnar); errors are {"error": "..."}
with a 4xx code for the client's mistakes. Beside them, unless turned off, two of our own: GET /
(a page to try the model in a browser) and POST .../<name>[/versions/<v>]:explain with
{"instances": [review]} (which words pushed the prediction, by occlusion).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
import uuid
from pathlib import Path

from .batching import Batcher, ModelCalls
from .explain import MAX_WORDS, explain
from .http11 import MAX_LINE, Body, Document, Refused, Request, linger, read_head, response
from .model_versions import ModelRepository, signature_metadata
from .page import render_page, version_notes
from .predict import Predictor
from .serving_config import BatchingParameters, Limits
from .serving_requests import RETRY_AFTER_SECONDS, ClientError, decode_json, parse_reviews

log = logging.getLogger(__name__)

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
    r"(?P<rest>/metadata|:predict|:explain)?$"
)
# An explanation runs the model on as many variants of the review as it has tokens, each as long
# as the review: its cost grows with the square of the length, so its request is held far below
# predict's limits. 64 KiB holds the longest IMDB review (about 14,000 characters) many times.
EXPLAIN_MAX_BODY = 64 << 10
EXPLAIN_MAX_TOKENS = MAX_WORDS
EXPLAIN_SIGNATURES = ("tokens", "logit", "token_logit")


class Api:
    """TF Serving's REST routes over one model repository, apart from HTTP's framing; with `page`,
    also the page at / and the explain route."""

    def __init__(
        self,
        repo: ModelRepository,
        model_name: str,
        limits: Limits,
        calls: ModelCalls,
        page: bool = True,
    ):
        self.repo = repo
        self.model_name = model_name
        self.limits = limits
        self.calls = calls
        self.page = page

    def route(self, target: str) -> tuple[str | None, int | None]:
        path = target.split("?")[0]
        if path == "/" and self.page:
            return "/", None
        m = _ROUTE.match(path)
        if not m or (m["rest"] == ":explain" and not self.page):
            raise ClientError(404, f"no such route: {target}")
        if m["name"] != self.model_name:
            raise ClientError(404, f"Servable not found for request: Latest({m['name']})")
        return m["rest"], int(m["version"]) if m["version"] else None

    def get(self, target: str) -> dict | Document:
        rest, requested = self.route(target)
        if rest == "/":
            return self.front_page()
        if rest in (":predict", ":explain"):
            raise ClientError(405, f"{rest[1:]} needs POST")
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
        """read_body(limit=None) gives the request's body once the route is known to take one."""
        rest, version = self.route(target)
        if rest == ":explain":
            return await self.explain(version, await read_body(EXPLAIN_MAX_BODY))
        if rest != ":predict":
            raise ClientError(
                405,
                "only :predict and :explain take POST" if self.page else "only :predict takes POST",
            )
        reviews, rows = _reviews(await read_body(), self.limits.max_batch)
        _, loaded = self.repo.get(version)
        prob, label = await asyncio.wrap_future(self.calls.submit(loaded, reviews))
        if rows:
            return {
                "predictions": [{"probability": p, "label": lab} for p, lab in zip(prob, label)]
            }
        return {"outputs": {"probability": prob, "label": label}}

    async def explain(self, requested: int | None, raw: bytes) -> dict:
        """Which tokens pushed the prediction of one review, on a model call's thread under the
        same cap as predict's."""
        [review], _ = _reviews(raw, max_batch=1)
        version, loaded = self.repo.get(requested)
        missing = [name for name in EXPLAIN_SIGNATURES if name not in loaded.signatures]
        if missing:
            raise ClientError(
                400,
                f"version {version} cannot explain: it was exported without the "
                f"{', '.join(missing)} signatures; export it again with scripts/train.py",
            )
        folder = self.repo.base / str(version)
        done = self.calls.call(explain_review, Predictor(folder, loaded), review.decode())
        return {"model_version": str(version), "explanations": [await asyncio.wrap_future(done)]}

    def front_page(self) -> Document:
        """The page, listing the versions served now with their model cards or figures."""
        versions = self.repo.loaded_versions()
        return render_page(
            self.model_name, {v: version_notes(self.repo.base / str(v)) for v in versions}
        )


def _reviews(raw: bytes, max_batch: int) -> tuple[list[bytes], bool]:
    """The reviews of a predict or explain request's body, checked (parse_reviews)."""
    try:
        return parse_reviews(decode_json(raw), max_batch)
    except RecursionError:
        # Deep nesting is the client's doing; json.loads and any walk of what it gave (a repr in
        # an error message) hit Python's recursion limit on it. Caught here, around both, so the
        # answer is a 400 rather than a 500 with a traceback in the log.
        raise ClientError(400, "the request's JSON is nested too deeply") from None


def explain_review(predictor: Predictor, review: str) -> dict:
    """The explain route's answer for one review (explain.explain), refused beyond
    EXPLAIN_MAX_TOKENS of the model's tokens; runs on a model call's thread."""
    tokens = predictor.tokens(review)
    if len(tokens) > EXPLAIN_MAX_TOKENS:
        raise ClientError(
            400,
            f"the review has {len(tokens)} tokens; explain takes at most {EXPLAIN_MAX_TOKENS} "
            "(predict takes longer ones)",
        )
    return explain(predictor, review, tokens=tokens).as_dict()


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
        body = Body(reader, self.limits.read_timeout, self.limits.max_body)
        request, status, retry_after = None, 200, None
        try:
            async with asyncio.timeout(self.limits.read_timeout):
                request = await read_head(reader, first)
            body.unread = request.body_length()
            obj = await self._answer(request, body, writer)
        except ClientError as e:
            if isinstance(e, Refused):
                body.unread = None
            status, obj, retry_after = e.status, {"error": str(e)}, e.retry_after
        except TimeoutError:
            if request is None:  # a head that never ended: nothing to answer
                return False
            body.unread = None
            status, obj = 408, {"error": f"no data for {self.limits.read_timeout} s"}
        except (OSError, asyncio.IncompleteReadError):
            return False
        except Exception:  # a bug must cost one request, never the server
            status, obj = 500, self._internal_error(request)
        await body.skip()
        keep = body.unread == 0 and request is not None and request.keep_alive and not self.stopping
        writer.write(response(status, obj, retry_after, close=not keep))
        if self.access_log:
            ms = (time.monotonic() - started) * 1000
            log.info(f'{client} "{_line(request)}" {status} {ms:.1f} ms')
        async with asyncio.timeout(self.limits.read_timeout):
            await writer.drain()
        if body.unread != 0:
            await linger(reader, writer)
        return keep

    async def _answer(self, request: Request, body: Body, writer: asyncio.StreamWriter) -> dict:
        """The answer of the request's route; the body is read only by a route that takes one."""
        if request.expects_continue():
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it
        if request.method == "GET":
            return self.api.get(request.target)
        if request.method == "POST":
            return await self.api.post(request.target, body.read)
        raise ClientError(501, f"unsupported method {request.method!r}")

    @staticmethod
    def _internal_error(request: Request | None) -> dict:
        """The answer to a request that failed on a bug: a request id, which the log has with the
        traceback of the exception being handled."""
        request_id = uuid.uuid4().hex[:12]
        log.exception(f"request id {request_id}: {_line(request)!r} failed")
        return {"error": f"internal error, request id {request_id}"}


def _line(request: Request | None) -> str:
    """The request line for the log; "-" before one was read."""
    return "-" if request is None else request.line


def make_server(
    model_dir: Path,
    model_name: str = "imdb_sentiment",
    host: str = "127.0.0.1",
    port: int = 8501,
    limits: Limits = Limits(),
    poll_seconds: float = 2.0,
    access_log: bool = False,
    batching: BatchingParameters | None = None,
    page: bool = True,
    latest_versions: int = 1,
):
    """The server (not started: call serve_forever), its model repository and the model calls
    (for a gRPC server beside it to share); `batching` turns on request batching, `page` the page
    at / and the explain route; the newest `latest_versions` versions are served."""
    repo = ModelRepository(model_dir, keep=latest_versions)
    calls = ModelCalls(limits.max_queued, Batcher(batching) if batching else None)
    api = Api(repo, model_name, limits, calls, page)
    server = Server((host, port), api, limits, access_log)

    def poll():
        while True:
            time.sleep(poll_seconds)
            try:
                repo.reload()
            except Exception as e:  # a broken new version must not take the served one down
                log.warning(f"reload failed, still serving {repo.loaded_versions()}: {e}")

    threading.Thread(target=poll, daemon=True).start()
    return server, repo, calls
