"""Soak a running REST server: good requests mixed with malformed ones, slow and idle clients,
for a bounded time; then check every good request was answered right and the server's threads
and memory stayed flat.

Reads the server's /proc/<pid>/status (Linux), so give the server's process id. Loopback use:

  python scripts/serve.py --read-timeout 2 --idle-timeout 2 --max-body-mb 1 &
  python scripts/soak.py --pid $! --port 8501 --seconds 300

The server's --read-timeout and --idle-timeout must be well under --quiet-seconds (10), since
slow and idle clients wait for them.

Good clients keep one connection each and send the same few reviews, whose answers must equal
those of a first request to 1e-6. Bad clients send, on new connections, a body that is not JSON,
a chunked body, a Content-Length that cannot be trusted, a lone surrogate, an unknown route, and
an oversized body; each must get its 4xx (never a 5xx) or a closed connection. Slow clients send
half a request and stop; idle clients open connections and send nothing: the server must close
both. Threads: after the load and the server's timeouts, back to within --thread-slack of the
count after the warm-up. Memory: the resident set's median over the last quarter of the run
within --rss-slack-mb MiB plus 10% of its median over the second quarter (the first is warm-up).
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
    start = proc_status(args.pid)
    tally, samples = Tally(), []
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

    workers = [good] * args.good_clients + [bad, bad, slow, idle, sample]
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    quiet_deadline = time.monotonic() + args.quiet_seconds
    end = proc_status(args.pid)
    while end["threads"] > start["threads"] + args.thread_slack:
        if time.monotonic() > quiet_deadline:
            break
        time.sleep(0.2)
        end = proc_status(args.pid)

    def rss_mib(lo: float, hi: float) -> float:
        part = [s["rss_kib"] for t, s in samples if lo * args.seconds <= t < hi * args.seconds]
        return statistics.median(part) / 1024

    early, late = rss_mib(0.25, 0.5), rss_mib(0.75, 1.0)
    checks = {
        "every good request answered right": tally.counts.get("good", 0) > 0
        and not any(f.startswith("good") for f in tally.failures),
        "every bad, slow and idle client handled": not tally.counts.get("failed"),
        "threads back to the start": end["threads"] <= start["threads"] + args.thread_slack,
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
