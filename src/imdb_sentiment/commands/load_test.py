"""Load a TF Serving-style endpoint from concurrent clients and print throughput and latency.

Every client keeps one connection open (HTTP/1.1 keep-alive for REST, a channel of its own for
gRPC) and sends --requests requests in total (split between clients), each with --batch reviews;
the run ends by itself. Loopback use only:

  python scripts/serve.py --port 8501 --grpc-port 8500 &
  python scripts/load_test.py --url http://127.0.0.1:8501 --batch 1
  python scripts/load_test.py --url http://127.0.0.1:8501 --batch 64 --requests 400
  python scripts/load_test.py --url grpc://127.0.0.1:8500 --batch 1
"""

import dataclasses
import json
import logging
import socket
import statistics
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imdb_sentiment import cli
from imdb_sentiment.files import UserError

log = logging.getLogger(__name__)


def reviews_from(path: str | None, n: int) -> list[str]:
    if path:
        import pandas as pd

        return (
            pd.read_csv(path, usecols=["review"], dtype=str, keep_default_na=False)
            .review.sample(n, random_state=0, replace=True)
            .tolist()
        )
    return [f"Review {i}: a wonderful, moving film with a dull middle act." for i in range(n)]


def main(argv=None) -> int:
    args = parse_args(argv)
    pool = reviews_from(args.data, 4096)
    grpc = args.url.startswith("grpc://")
    connect = (grpc_client if grpc else rest_client)(args.url, args.model_name)
    warm_up(connect, pool[: args.batch], args.url)
    result = load(connect, pool, clients=args.clients, requests=args.requests, batch=args.batch)
    figures = dataclasses.asdict(result)
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if result.errors:
        failed = sum(result.errors.values())
        log.error(f"{failed} of {args.requests} requests failed: {result.errors}")
        return 1
    return 0


def parse_args(argv):
    p = cli.Parser(__doc__)
    p.add_argument(
        "--url",
        default="http://127.0.0.1:8501",
        help="the REST API's base URL, or grpc://host:port for gRPC (default %(default)s)",
    )
    p.add_argument("--model-name", default="imdb_sentiment")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument(
        "--requests", type=int, default=2000, help="total requests (default %(default)s)"
    )
    p.add_argument("--batch", type=int, default=1, help="reviews per request (default %(default)s)")
    p.add_argument(
        "--data", help="a CSV with a review column to sample from (default: a fixed sentence)"
    )
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args(argv)


# connect() -> (send, close): send(reviews) gives None or why the request failed.
Connect = Callable[[], tuple[Callable[[list[str]], str | None], Callable[[], None]]]


@dataclass
class Figures:
    """What a load test measured (its JSON line)."""

    clients: int
    requests: int  # answered
    batch: int
    seconds: float
    requests_per_s: float
    reviews_per_s: float
    latency_ms_p50: float
    latency_ms_p99: float
    latency_ms_mean: float
    errors: dict[str, int]  # failed requests by why


def warm_up(connect: Connect, reviews: list[str], url: str) -> None:
    """A first request, so that the run does not time the model's warm-up."""
    send, close = connect()
    error = send(reviews)
    close()
    if error:
        raise UserError(f"{url}: the first request failed: {error}")


def load(connect: Connect, pool: list[str], *, clients: int, requests: int, batch: int) -> Figures:
    """`requests` requests of `batch` reviews of pool, split between `clients` concurrent
    clients, each on a connection of its own."""
    wrapped = pool * 2  # a request's reviews may run past the pool's end
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]

    def client(i: int) -> tuple[list[float], Counter]:
        """One connection; a failed request is counted rather than ending the run: under
        overload, failures are a result too."""
        send, close = connect()
        latencies, errors = [], Counter()
        for j in range(per_client[i]):
            start = (i * 7919 + j * batch) % len(pool)
            t = time.perf_counter()
            error = send(wrapped[start : start + batch])
            if error:
                errors[error] += 1
            else:
                latencies.append(time.perf_counter() - t)
        close()
        return latencies, errors

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        parts = list(ex.map(client, range(clients)))
    wall = time.perf_counter() - t0
    latencies = [x for part, _ in parts for x in part]
    errors = sum((e for _, e in parts), Counter())
    if not latencies:
        raise UserError(f"no request succeeded: {dict(errors)}")
    ms = np.array(latencies) * 1000
    return Figures(
        clients=clients,
        requests=len(latencies),
        batch=batch,
        seconds=round(wall, 2),
        requests_per_s=round(len(latencies) / wall, 1),
        reviews_per_s=round(len(latencies) * batch / wall, 1),
        latency_ms_p50=round(float(np.percentile(ms, 50)), 2),
        latency_ms_p99=round(float(np.percentile(ms, 99)), 2),
        latency_ms_mean=round(statistics.fmean(ms), 2),
        errors=dict(errors),
    )


def rest_client(url: str, model_name: str) -> Connect:
    """connect() -> (send, close) over one keep-alive HTTP/1.1 connection, replaced when it breaks;
    send(reviews) gives None or why the request failed.

    A socket and HTTP/1.1's framing written out, not http.client: on loopback the client shares
    the cores with the server it measures, and http.client (which parses each answer's headers
    through the email package) took 2.6 times the CPU per request (docs/lab/serving-rounds.md)."""
    parts = urllib.parse.urlparse(url)
    address = (parts.hostname, parts.port or 80)
    head = (
        f"POST /v1/models/{model_name}:predict HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()

    def connect():
        sock = rfile = None

        def close():
            nonlocal sock, rfile
            if sock:
                rfile.close()
                sock.close()
            sock = rfile = None

        def send(reviews: list[str]) -> str | None:
            nonlocal sock, rfile
            body = json.dumps({"instances": reviews}).encode()
            try:
                if sock is None:
                    sock = socket.create_connection(address, timeout=60)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    rfile = sock.makefile("rb")
                sock.sendall(b"%s%d\r\n\r\n%s" % (head, len(body), body))
                status, keep = read_response(rfile)
            except (OSError, BadResponse) as e:
                close()
                return type(e).__name__
            if not keep:
                close()
            return None if status == 200 else f"HTTP {status}"

        return send, close

    return connect


class BadResponse(ValueError):
    """What came back is not an HTTP/1.x response."""


def read_response(rfile) -> tuple[int, bool]:
    """Reads one response: its status, and whether the connection stays open."""
    line = rfile.readline(65537)
    if not line:
        raise ConnectionResetError("the server closed the connection without an answer")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise BadResponse(f"not an HTTP response: {line[:80]!r}")
    status, length, keep = int(parts[1]), None, parts[0] == b"HTTP/1.1"
    while (line := rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            if not value.isdigit():
                raise BadResponse(f"malformed Content-Length: {value[:40]!r}")
            length = int(value)
        elif name == b"connection":
            keep = value.lower() != b"close"
    if length is None:  # the answer runs to the connection's end
        rfile.read()
        return status, False
    if len(rfile.read(length)) < length:
        raise ConnectionResetError("the connection closed inside an answer")
    return status, keep


def grpc_client(url: str, model_name: str) -> Connect:
    """connect() -> (send, close) over a gRPC channel of its own (TF Serving's PredictionService);
    send(reviews) gives None or the status code of a failed call."""
    import grpc

    cli.load_tensorflow()  # which the gRPC client's tensor protos need; its notices held back
    from imdb_sentiment.predict import GrpcPredictor

    def connect():
        predictor = GrpcPredictor(url.removeprefix("grpc://"), model_name, timeout=60)

        def send(reviews: list[str]) -> str | None:
            try:
                predictor.predict_batch(reviews)
            except grpc.RpcError as e:
                return f"gRPC {e.code().name}"
            return None

        return send, predictor.close

    return connect


if __name__ == "__main__":
    sys.exit(main())
