"""Soak a running server: good requests mixed with malformed ones, slow and idle clients, for a
bounded time; then check every good request was answered right and the server's threads and
memory stayed flat. REST always; with --grpc-port, its gRPC port at the same time.

Reads the server's /proc/<pid>/status (Linux), so give the server's process id. Loopback use:

  python scripts/serve.py --read-timeout 2 --idle-timeout 2 --max-body-mb 1 --grpc-port 8500 &
  python scripts/soak.py --pid $! --port 8501 --grpc-port 8500 --max-body-mb 1 --seconds 300

The server's --read-timeout and --idle-timeout must be well under --quiet-seconds (10), since
slow and idle clients wait for them.

Good clients keep one connection each and send the same few reviews, whose answers must equal
those of a first request to 1e-6. Bad clients send, on new connections, a body that is not JSON,
a chunked body, a Content-Length that cannot be trusted, a lone surrogate, an unknown route, and
an oversized body; each must get its 4xx (never a 5xx) or a closed connection. Slow clients send
half a request and stop; idle clients open connections and send nothing: the server must close
both. With --grpc-port, as many good clients again call Predict with TF Serving's stub, one
channel each, and must get the same answers; a bad client sends Predict requests for an unknown
model, with a wrong input name, dtype or signature, or 1 MiB over the server's --max-body-mb,
each of which must get its status code (never INTERNAL or UNKNOWN); and a raw client sends bytes
that are not HTTP/2, which the server must close. Threads: after the load and the server's
timeouts, back to within --thread-slack of the count after the warm-up. gRPC's pool keeps its
worker threads once started, up to its limit: with --grpc-port the gRPC clients run for
--grpc-warmup seconds before that count is taken, and the pool may still grow by one thread per
gRPC call this soak makes at once. Memory: the resident set's median over the last quarter of
the run within --rss-slack-mb MiB plus 10% of its median over the second quarter (the first is
warm-up).
Exit 0 when every check holds, 1 otherwise; a JSON summary goes to stdout either way.
"""

import dataclasses
import functools
import http.client
import json
import logging
import socket
import statistics
import threading
import time
from dataclasses import dataclass

from imdb_sentiment import cli

log = logging.getLogger(__name__)

REVIEWS = [
    "A wonderful, moving film with a superb cast.",
    "Dull, pointless and far too long.",
    "<br />It was fine, I suppose. The music was great; the plot was awful.",
]
# (what is sent after the request line's path, the status codes that are right for it)
BAD = [
    (b"Content-Type: application/json\r\nContent-Length: 9\r\n\r\n{not json", {400}),
    (b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", {411}),
    (b"Content-Length: -1\r\n\r\n", {400}),
    (b'Content-Length: 26\r\n\r\n{"instances": ["\\ud800x"]}', {400}),
    (b"Content-Length: 999999999\r\n\r\n", {413}),
]


def main(argv=None) -> int:
    args = parse_args(argv)
    target = Target(
        args.host, args.port, args.model_name, args.grpc_port, args.max_body_mb, args.quiet_seconds
    )
    result = soak(
        target,
        args.pid,
        seconds=args.seconds,
        good_clients=args.good_clients,
        grpc_warmup=args.grpc_warmup,
        thread_slack=args.thread_slack,
        rss_slack_mb=args.rss_slack_mb,
    )
    print(json.dumps(dataclasses.asdict(result)))
    for name, held in result.checks.items():
        if not held:
            log.error(f"failed: {name}")
    return 0 if all(result.checks.values()) else 1


def parse_args(argv):
    p = cli.Parser(__doc__)
    p.add_argument("--pid", type=int, required=True, help="the server's process id")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--model-name", default="imdb_sentiment")
    p.add_argument("--seconds", type=float, default=300.0, help="(default %(default)s)")
    p.add_argument("--good-clients", type=int, default=4, help="(default %(default)s)")
    p.add_argument(
        "--quiet-seconds",
        type=float,
        default=10.0,
        help="after the load, how long the server may take to close what is left (its idle and "
        "read timeouts; default %(default)s)",
    )
    p.add_argument("--thread-slack", type=int, default=2, help="(default %(default)s)")
    p.add_argument("--rss-slack-mb", type=float, default=32.0, help="(default %(default)s)")
    p.add_argument("--grpc-port", type=int, help="the server's gRPC port, soaked too if given")
    p.add_argument("--grpc-warmup", type=float, default=5.0, help="(seconds; default %(default)s)")
    p.add_argument(
        "--max-body-mb", type=float, default=8.0, help="the server's (default %(default)s)"
    )
    return p.parse_args(argv)


@dataclass(frozen=True)
class Target:
    """The soaked server: where it listens, what it serves, and the limits its clients probe."""

    host: str
    port: int
    model_name: str
    grpc_port: int | None  # None: REST alone
    max_body_mb: float
    quiet_seconds: float  # how long it may take to close a connection it is to close

    @property
    def path(self) -> str:
        return f"/v1/models/{self.model_name}:predict"


@dataclass
class Threads:
    start: int  # after the warm-up
    max: int
    end: int  # after the load and the server's timeouts


@dataclass
class Rss:
    """The resident set's median, MiB."""

    second_quarter: float
    last_quarter: float


@dataclass
class Soaked:
    """What a soak saw (the JSON summary it prints) and whether each check held."""

    seconds: float
    requests: dict[str, int]  # by kind of client, and "failed"
    failures: list[str]  # the first 20
    threads: Threads
    rss_mib: Rss
    checks: dict[str, bool]


def soak(
    target: Target,
    pid: int,
    *,
    seconds: float,
    good_clients: int,
    grpc_warmup: float,
    thread_slack: int,
    rss_slack_mb: float,
) -> Soaked:
    """Every client against target (server process pid) for `seconds`, gRPC's after a warm-up
    of grpc_warmup seconds; then the checks of the module's docstring."""
    tally, deadline = Tally(), Deadline()
    rest = RestClients(target, tally, deadline)
    grpc_workers = []
    if target.grpc_port:
        grpc = GrpcClients(target, rest.expected, tally, deadline)
        grpc_workers = [grpc.good] * good_clients + [grpc.bad, grpc.raw]
        deadline.start_now(grpc_warmup)
        run_all(grpc_workers)
        tally.counts = {k: 0 for k in tally.counts}  # warm-up calls are checked, not counted
    start = proc_status(pid)
    deadline.start_now(seconds)
    memory = Sampler(pid, deadline)
    rest_workers = [rest.good] * good_clients + [rest.bad, rest.bad, rest.slow, rest.idle]
    run_all(rest_workers + [memory.run] + grpc_workers)

    slack = thread_slack + (good_clients + 1 if target.grpc_port else 0)
    end = settled(pid, start.threads + slack, target.quiet_seconds)
    early, late = memory.rss_mib(0.25, 0.5), memory.rss_mib(0.75, 1.0)
    goods = ["good", "grpc good"] if target.grpc_port else ["good"]
    checks = {
        "every good request answered right": all(tally.counts.get(g, 0) > 0 for g in goods)
        and not any(f.startswith(("good", "grpc good")) for f in tally.failures),
        # failures, not counts["failed"]: the counts restart after the gRPC warm-up
        "every bad, slow and idle client handled": not tally.failures,
        "threads back to the start": end.threads <= start.threads + slack,
        "memory flat": late <= early * 1.1 + rss_slack_mb,
    }
    return Soaked(
        seconds,
        tally.counts,
        tally.failures,
        Threads(start.threads, max(s.threads for _, s in memory.samples), end.threads),
        Rss(round(early, 1), round(late, 1)),
        checks,
    )


@dataclass(frozen=True)
class Status:
    threads: int
    rss_kib: int  # VmRSS


def proc_status(pid: int) -> Status:
    """A process's /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return Status(int(fields["Threads"]), int(fields["VmRSS"].split()[0]))


def settled(pid: int, threads: int, wait: float) -> Status:
    """proc_status once the process is down to `threads` threads, or after `wait` seconds."""
    quiet_deadline = time.monotonic() + wait
    end = proc_status(pid)
    while end.threads > threads:
        if time.monotonic() > quiet_deadline:
            break
        time.sleep(0.2)
        end = proc_status(pid)
    return end


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.failures: list[str] = []

    def add(self, kind: str, failure: str | None = None) -> None:
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if failure and len(self.failures) < 20:
                self.failures.append(f"{kind}: {failure}")
            if failure:
                self.counts["failed"] = self.counts.get("failed", 0) + 1


class Deadline:
    """When every client stops: set anew for the gRPC warm-up, then for the soak."""

    def __init__(self):
        self.start = self.end = time.monotonic()
        self.seconds = 0.0

    def start_now(self, seconds: float) -> None:
        self.start, self.seconds = time.monotonic(), seconds
        self.end = self.start + seconds

    def __call__(self) -> bool:
        """Whether it is still ahead."""
        return time.monotonic() < self.end


class Sampler:
    """The server's threads and memory, every half second until the deadline."""

    def __init__(self, pid: int, deadline: Deadline):
        self.pid, self.deadline = pid, deadline
        self.samples: list[tuple[float, Status]] = []  # (seconds in, proc_status)

    def run(self) -> None:
        while self.deadline():
            self.samples.append((time.monotonic() - self.deadline.start, proc_status(self.pid)))
            time.sleep(0.5)

    def rss_mib(self, lo: float, hi: float) -> float:
        """The median resident set from fraction lo to hi of the soak."""
        seconds = self.deadline.seconds
        part = [s.rss_kib for t, s in self.samples if lo * seconds <= t < hi * seconds]
        return statistics.median(part) / 1024


def run_all(workers) -> None:
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def wrong_answers(got: list[float], expected: list[float]) -> str | None:
    """Why got is not the expected answers (to 1e-6), or None."""
    wrong = max(abs(a - b) for a, b in zip(got, expected)) > 1e-6
    return f"answers {got} != {expected}" if wrong else None


class RestClients:
    """The REST port's good, bad, slow and idle clients, each a loop until the deadline."""

    def __init__(self, target: Target, tally: Tally, deadline: Deadline):
        self.target, self.tally, self.deadline = target, tally, deadline
        self.body = json.dumps({"instances": REVIEWS})
        self.expected = self.predict(self.connection())  # what every good client must be told

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.target.host, self.target.port, timeout=60)

    def predict(self, conn: http.client.HTTPConnection) -> list[float]:
        conn.request("POST", self.target.path, self.body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}: {data[:200]!r}")
        return [p["probability"] for p in json.loads(data)["predictions"]]

    def raw(self, data: bytes, wait: float) -> bytes:
        """What the server answers to data on a new connection, read until it closes."""
        with socket.create_connection((self.target.host, self.target.port), timeout=wait) as s:
            s.sendall(data)
            got = b""
            try:
                while chunk := s.recv(1 << 16):
                    got += chunk
                    if b"\r\n\r\n" in got and b"Connection: close" not in got:
                        break  # an answer that keeps the connection: one is enough
            except ConnectionResetError:
                pass
            return got

    def good(self) -> None:
        conn = self.connection()
        while self.deadline():
            try:
                self.tally.add("good", wrong_answers(self.predict(conn), self.expected))
            except (OSError, ValueError, http.client.HTTPException) as e:
                self.tally.add("good", repr(e))
                conn.close()  # the next request reconnects

    def bad(self) -> None:
        i = 0
        while self.deadline():
            tail, right = BAD[i % len(BAD)]
            if i % (len(BAD) + 1) == len(BAD):  # an unknown route, on a keep-alive connection
                line, right = b"GET /v1/nothing HTTP/1.1\r\n\r\n", {404}
            else:
                line = f"POST {self.target.path} HTTP/1.1\r\n".encode() + tail
            try:
                answer = self.raw(line, self.target.quiet_seconds)
                status = int(answer.split(b" ", 2)[1]) if answer else None
                ok = status is None or status in right
                expectation = f"{line[:60]!r} got {status}, expected {right}"
                self.tally.add("bad", None if ok else expectation)
            except OSError as e:
                self.tally.add("bad", repr(e))
            i += 1

    def slow(self) -> None:
        half = f"POST {self.target.path} HTTP/1.1\r\nContent-Length: 100\r\n\r\n{{".encode()
        while self.deadline():
            t = time.monotonic()
            try:  # half a request, then silence: the server must close it
                self.raw(half, 60)
                late = time.monotonic() - t > self.target.quiet_seconds
                self.tally.add("slow", "not closed within --quiet-seconds" if late else None)
            except OSError as e:
                self.tally.add("slow", repr(e))

    def idle(self) -> None:
        address = (self.target.host, self.target.port)
        while self.deadline():
            socks = [socket.create_connection(address, timeout=60) for _ in range(4)]
            t = time.monotonic()
            for s in socks:
                try:
                    closed = s.recv(1) == b""
                except ConnectionResetError:
                    closed = True
                except OSError as e:
                    closed = False
                    self.tally.add("idle", repr(e))
                s.close()
                late = time.monotonic() - t > self.target.quiet_seconds
                self.tally.add("idle", None if closed and not late else "not closed in time")


class GrpcClients:
    """The gRPC port's good, bad and raw clients, each a loop until the deadline."""

    def __init__(self, target: Target, expected: list[float], tally: Tally, deadline: Deadline):
        # Imported here, before the clients' threads start, so that none of them imports
        # TensorFlow.
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        from imdb_sentiment.predict import GrpcPredictor

        self.target, self.expected, self.tally, self.deadline = target, expected, tally, deadline
        address = f"{target.host}:{target.grpc_port}"
        self.predictor = functools.partial(GrpcPredictor, address, target.model_name, timeout=60)
        self.channel = functools.partial(grpc.insecure_channel, address)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub
        self.bad_requests = bad_grpc_requests(target)

    def good(self) -> None:  # the client predict.py --server grpc://... uses
        import grpc

        client = self.predictor()
        while self.deadline():
            try:
                got = [p["probability"] for p in client.predict_batch(REVIEWS)]
                self.tally.add("grpc good", wrong_answers(got, self.expected))
            except grpc.RpcError as e:
                self.tally.add("grpc good", f"{e.code().name}: {e.details()}")
        client.close()

    def bad(self) -> None:
        import grpc

        with self.channel() as channel:
            stub = self.stub(channel)
            i = 0
            while self.deadline():
                req, right = self.bad_requests[i % len(self.bad_requests)]
                try:
                    stub.Predict(req, timeout=60)
                    self.tally.add("grpc bad", f"request {i % len(self.bad_requests)} answered OK")
                except grpc.RpcError as e:
                    wrong = e.code() != right
                    expectation = f"got {e.code().name}, expected {right.name}"
                    self.tally.add("grpc bad", expectation if wrong else None)
                i += 1

    def raw(self) -> None:
        address = (self.target.host, self.target.grpc_port)
        while self.deadline():
            t = time.monotonic()
            try:  # not the HTTP/2 preface: the server must close the connection
                with socket.create_connection(address, timeout=60) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    while s.recv(1 << 16):
                        pass
                late = time.monotonic() - t > self.target.quiet_seconds
                self.tally.add("grpc raw", "not closed within --quiet-seconds" if late else None)
            except ConnectionResetError:
                self.tally.add("grpc raw")
            except OSError as e:
                self.tally.add("grpc raw", repr(e))


def bad_grpc_requests(target: Target) -> list:
    """(PredictRequest, the status code it must get) for each kind of bad request."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    def request(reviews, name=target.model_name, key="review", signature="serving_default"):
        req = predict_pb2.PredictRequest()
        req.model_spec.name, req.model_spec.signature_name = name, signature
        req.inputs[key].CopyFrom(tf.make_tensor_proto(reviews))
        return req

    code = grpc.StatusCode
    return [
        (request(REVIEWS, name="nothing"), code.NOT_FOUND),
        (request(REVIEWS, key="text"), code.INVALID_ARGUMENT),
        (request([1, 2, 3]), code.INVALID_ARGUMENT),
        (request(REVIEWS, signature="nothing"), code.INVALID_ARGUMENT),
        (request(["x" * int((target.max_body_mb + 1) * (1 << 20))]), code.RESOURCE_EXHAUSTED),
    ]
