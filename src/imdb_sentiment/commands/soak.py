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

import http.client
import json
import logging
import socket
import statistics
import threading
import time

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


def proc_status(pid: int) -> dict[str, int]:
    """Threads and VmRSS (KiB) of a process, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return {"threads": int(fields["Threads"]), "rss_kib": int(fields["VmRSS"].split()[0])}


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


def main(argv=None) -> int:
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
    args = p.parse_args(argv)

    path = f"/v1/models/{args.model_name}:predict"
    body = json.dumps({"instances": REVIEWS})

    def predict(conn) -> list[float]:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}: {data[:200]!r}")
        return [p["probability"] for p in json.loads(data)["predictions"]]

    expected = predict(http.client.HTTPConnection(args.host, args.port, timeout=60))
    tally, samples = Tally(), []
    grpc_workers = []
    if args.grpc_port:
        grpc_workers = grpc_clients(args, expected, tally, lambda: deadline)
        deadline = time.monotonic() + args.grpc_warmup
        run_all(grpc_workers)
        tally.counts = {k: 0 for k in tally.counts}  # warm-up calls are checked, not counted
    start = proc_status(args.pid)
    t0 = time.monotonic()
    deadline = t0 + args.seconds

    def good():
        conn = http.client.HTTPConnection(args.host, args.port, timeout=60)
        while time.monotonic() < deadline:
            try:
                got = predict(conn)
                wrong = max(abs(a - b) for a, b in zip(got, expected)) > 1e-6
                tally.add("good", f"answers {got} != {expected}" if wrong else None)
            except (OSError, ValueError, http.client.HTTPException) as e:
                tally.add("good", repr(e))
                conn.close()  # the next request reconnects

    def raw(data: bytes, wait: float) -> bytes:
        """What the server answers to data on a new connection, read until it closes."""
        with socket.create_connection((args.host, args.port), timeout=wait) as s:
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

    def bad():
        i = 0
        while time.monotonic() < deadline:
            tail, right = BAD[i % len(BAD)]
            if i % (len(BAD) + 1) == len(BAD):  # an unknown route, on a keep-alive connection
                line, right = b"GET /v1/nothing HTTP/1.1\r\n\r\n", {404}
            else:
                line = f"POST {path} HTTP/1.1\r\n".encode() + tail
            try:
                answer = raw(line, args.quiet_seconds)
                status = int(answer.split(b" ", 2)[1]) if answer else None
                ok = status is None or status in right
                tally.add("bad", None if ok else f"{line[:60]!r} got {status}, expected {right}")
            except OSError as e:
                tally.add("bad", repr(e))
            i += 1

    def slow():
        while time.monotonic() < deadline:
            t = time.monotonic()
            try:  # half a request, then silence: the server must close it
                raw(f"POST {path} HTTP/1.1\r\nContent-Length: 100\r\n\r\n{{".encode(), 60)
                late = time.monotonic() - t > args.quiet_seconds
                tally.add("slow", "not closed within --quiet-seconds" if late else None)
            except OSError as e:
                tally.add("slow", repr(e))

    def idle():
        while time.monotonic() < deadline:
            socks = [socket.create_connection((args.host, args.port), timeout=60) for _ in range(4)]
            t = time.monotonic()
            for s in socks:
                try:
                    closed = s.recv(1) == b""
                except ConnectionResetError:
                    closed = True
                except OSError as e:
                    closed = False
                    tally.add("idle", repr(e))
                s.close()
                late = time.monotonic() - t > args.quiet_seconds
                tally.add("idle", None if closed and not late else "not closed in time")

    def sample():
        while time.monotonic() < deadline:
            samples.append((time.monotonic() - t0, proc_status(args.pid)))
            time.sleep(0.5)

    run_all([good] * args.good_clients + [bad, bad, slow, idle, sample] + grpc_workers)

    quiet_deadline = time.monotonic() + args.quiet_seconds
    end = proc_status(args.pid)
    slack = args.thread_slack + (args.good_clients + 1 if args.grpc_port else 0)
    while end["threads"] > start["threads"] + slack:
        if time.monotonic() > quiet_deadline:
            break
        time.sleep(0.2)
        end = proc_status(args.pid)

    def rss_mib(lo: float, hi: float) -> float:
        part = [s["rss_kib"] for t, s in samples if lo * args.seconds <= t < hi * args.seconds]
        return statistics.median(part) / 1024

    early, late = rss_mib(0.25, 0.5), rss_mib(0.75, 1.0)
    goods = ["good", "grpc good"] if args.grpc_port else ["good"]
    checks = {
        "every good request answered right": all(tally.counts.get(g, 0) > 0 for g in goods)
        and not any(f.startswith(("good", "grpc good")) for f in tally.failures),
        # failures, not counts["failed"]: the counts restart after the gRPC warm-up
        "every bad, slow and idle client handled": not tally.failures,
        "threads back to the start": end["threads"] <= start["threads"] + slack,
        "memory flat": late <= early * 1.1 + args.rss_slack_mb,
    }
    summary = {
        "seconds": args.seconds,
        "requests": tally.counts,
        "failures": tally.failures,
        "threads": {
            "start": start["threads"],
            "max": max(s["threads"] for _, s in samples),
            "end": end["threads"],
        },
        "rss_mib": {"second_quarter": round(early, 1), "last_quarter": round(late, 1)},
        "checks": checks,
    }
    print(json.dumps(summary))
    for name, held in checks.items():
        if not held:
            log.error(f"failed: {name}")
    return 0 if all(checks.values()) else 1


def run_all(workers) -> None:
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def grpc_clients(args, expected: list[float], tally: Tally, deadline) -> list:
    """The gRPC port's good, bad and raw clients, each running until deadline()."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from imdb_sentiment.predict import GrpcPredictor

    target = f"{args.host}:{args.grpc_port}"
    code = grpc.StatusCode

    def request(reviews, name=args.model_name, key="review", signature="serving_default"):
        req = predict_pb2.PredictRequest()
        req.model_spec.name, req.model_spec.signature_name = name, signature
        req.inputs[key].CopyFrom(tf.make_tensor_proto(reviews))
        return req

    bad_requests = [
        (request(REVIEWS, name="nothing"), code.NOT_FOUND),
        (request(REVIEWS, key="text"), code.INVALID_ARGUMENT),
        (request([1, 2, 3]), code.INVALID_ARGUMENT),
        (request(REVIEWS, signature="nothing"), code.INVALID_ARGUMENT),
        (request(["x" * int((args.max_body_mb + 1) * (1 << 20))]), code.RESOURCE_EXHAUSTED),
    ]

    def good():  # the client predict.py --server grpc://... uses
        client = GrpcPredictor(target, args.model_name, timeout=60)
        while time.monotonic() < deadline():
            try:
                got = [p["probability"] for p in client.predict_batch(REVIEWS)]
                wrong = max(abs(a - b) for a, b in zip(got, expected)) > 1e-6
                tally.add("grpc good", f"answers {got} != {expected}" if wrong else None)
            except grpc.RpcError as e:
                tally.add("grpc good", f"{e.code().name}: {e.details()}")
        client.close()

    def bad():
        with grpc.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            i = 0
            while time.monotonic() < deadline():
                req, right = bad_requests[i % len(bad_requests)]
                try:
                    stub.Predict(req, timeout=60)
                    tally.add("grpc bad", f"request {i % len(bad_requests)} answered OK")
                except grpc.RpcError as e:
                    wrong = e.code() != right
                    expectation = f"got {e.code().name}, expected {right.name}"
                    tally.add("grpc bad", expectation if wrong else None)
                i += 1

    def raw():
        while time.monotonic() < deadline():
            t = time.monotonic()
            try:  # not the HTTP/2 preface: the server must close the connection
                with socket.create_connection((args.host, args.grpc_port), timeout=60) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    while s.recv(1 << 16):
                        pass
                late = time.monotonic() - t > args.quiet_seconds
                tally.add("grpc raw", "not closed within --quiet-seconds" if late else None)
            except ConnectionResetError:
                tally.add("grpc raw")
            except OSError as e:
                tally.add("grpc raw", repr(e))

    return [good] * args.good_clients + [bad, raw]
