"""Serve exported models over TF Serving's REST API, for machines without TF Serving.

  python scripts/serve.py                      # saved_models/imdb_sentiment on 127.0.0.1:8501
  curl -d '{"instances": ["A wonderful film."]}' localhost:8501/v1/models/imdb_sentiment:predict

Routes: GET /v1/models/<name> (status), GET /v1/models/<name>/metadata (signatures),
POST /v1/models/<name>[/versions/<v>]:predict with {"instances": [...]} or {"inputs": [...]}.
Not TF Serving's, turned off by --no-page: GET / (a page to try the model in a browser) and
POST /v1/models/<name>[/versions/<v>]:explain with {"instances": [review]} (its words' effects).
--grpc-port 8500 also serves TF Serving's gRPC API (PredictionService.Predict and
GetModelMetadata, ModelService.GetModelStatus) through the same model calls and batches.
The newest version folder is served (the newest N with --latest-versions N); a new one is picked
up within --poll-seconds, no restart.
--enable_batching merges concurrent requests into one model call, with TF Serving's batching
parameters (flags, or the same --batching_parameters_file TF Serving reads).
SIGTERM or Ctrl-C stops accepting, lets the requests in flight finish (--drain-seconds), exits 0.
"""

import logging
import signal
from pathlib import Path

from imdb_sentiment import cli

log = logging.getLogger(__name__)


# TF Serving's batching parameters, each also a flag of its own name
BATCHING_FLAGS = {
    "max_batch_size": "most reviews in one model call",
    "batch_timeout_micros": "longest a batch waits for more requests",
    "num_batch_threads": "model calls at once",
    "max_enqueued_batches": "batches waiting for a thread; more requests get 503",
}


def parse_args(argv=None):
    from imdb_sentiment.config import DEFAULT_EXPORT_DIR
    from imdb_sentiment.serving_config import BatchingParameters, Limits, default

    limit = Limits()
    p = cli.Parser(__doc__)
    p.add_argument(
        "--model-dir",
        type=Path,
        default=DEFAULT_EXPORT_DIR,
        help="the folder holding numbered version folders (default %(default)s)",
    )
    p.add_argument(
        "--model-name", default="imdb_sentiment", help="name in the URL (default %(default)s)"
    )
    p.add_argument(
        "--latest-versions",
        type=int,
        default=1,
        metavar="N",
        help="serve the newest N versions, as TF Serving's model_version_policy "
        "{ latest { num_versions: N } } (default %(default)s)",
    )
    p.add_argument(
        "--no-page",
        action="store_true",
        help="leave out the page at / and the explain route (neither is TF Serving's)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind; 0.0.0.0 exposes it to the network (default %(default)s)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=8501,
        help="0 picks a free port (default %(default)s, as TF Serving)",
    )
    p.add_argument(
        "--grpc-port",
        type=int,
        help="also serve TF Serving's gRPC API on this port (TF Serving's is 8500; 0 picks a free "
        "port); default: no gRPC",
    )
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=limit.max_body / (1 << 20),
        help="largest request body (default %(default)s)",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=limit.max_batch,
        help="most reviews in one request (default %(default)s)",
    )
    p.add_argument(
        "--poll-seconds", type=float, default=2.0, help="how often to look for new versions"
    )
    p.add_argument(
        "--read-timeout",
        type=float,
        default=limit.read_timeout,
        help="seconds of silence while a request is read or answered before the connection is "
        "closed (default %(default)s)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=limit.idle_timeout,
        help="seconds a keep-alive connection may wait for its next request (default %(default)s)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=limit.max_connections,
        help="open connections; more are answered 503 with Retry-After (default %(default)s)",
    )
    p.add_argument(
        "--max-queued",
        type=int,
        default=limit.max_queued,
        help="predict and explain requests waiting for or in a model call; more are answered 503 "
        "with Retry-After (default %(default)s)",
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=10.0,
        help="on SIGTERM or Ctrl-C, how long requests in flight may take to finish "
        "(default %(default)s)",
    )
    p.add_argument("--access-log", action="store_true", help="log one line per request (stderr)")
    p.add_intra_op_threads_argument("--tensorflow_intra_op_parallelism")
    batching = p.add_argument_group(
        "request batching (TF Serving's --enable_batching and its parameters)"
    )
    batching.add_argument(
        "--enable_batching",
        "--enable-batching",
        action="store_true",
        help="merge concurrent predict requests into one model call",
    )
    batching.add_argument(
        "--batching_parameters_file",
        "--batching-parameters-file",
        type=Path,
        help="TF Serving's batching parameters file (`max_batch_size { value: 256 }` lines); "
        "a flag below overrides the value it gives",
    )
    for name, meaning in BATCHING_FLAGS.items():
        value = default(BatchingParameters, name)
        shown = "the number of CPUs" if value is None else value
        batching.add_argument(
            "--" + name.replace("_", "-"), dest=name, type=int, help=f"{meaning} (default {shown})"
        )
    args = p.parse_args(argv)
    if args.latest_versions < 1:
        p.error("--latest-versions must be at least 1")
    return args


def batching_parameters(args):
    """The BatchingParameters of --enable_batching (its file, then the flags given), or None."""
    from imdb_sentiment.serving_config import BatchingParameters, read_batching_parameters

    if not args.enable_batching:
        return None
    file = args.batching_parameters_file
    given = read_batching_parameters(file) if file else {}
    given.update({k: getattr(args, k) for k in BATCHING_FLAGS if getattr(args, k) is not None})
    batching = BatchingParameters(**given)
    log.info(f"batching: {batching}")
    return batching


def limits(args):
    from imdb_sentiment.serving_config import Limits

    return Limits(
        max_body=int(args.max_body_mb * (1 << 20)),
        max_batch=args.max_batch,
        read_timeout=args.read_timeout,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
        max_queued=args.max_queued,
    )


def start(args):
    """The REST server (not serving yet) and, with --grpc-port, the gRPC server beside it (started;
    else None), both on the model folder's versions, through the same model calls."""
    from imdb_sentiment.files import UserError
    from imdb_sentiment.serve import make_server

    limited = limits(args)
    try:
        server, repo, calls = make_server(
            args.model_dir,
            args.model_name,
            args.host,
            args.port,
            limited,
            args.poll_seconds,
            args.access_log,
            batching_parameters(args),
            page=not args.no_page,
            latest_versions=args.latest_versions,
        )
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {e.strerror}") from None
    log.info(f"serving {args.model_name} versions {repo.loaded_versions()} from {args.model_dir}")
    if args.grpc_port is None:
        return server, None
    from imdb_sentiment.grpc_serve import make_grpc_server

    grpc_server, grpc_port = make_grpc_server(
        repo, calls, args.model_name, args.host, args.grpc_port, limited, args.access_log
    )
    host = server.server_address[0]
    log.info(f"gRPC listening on {host}:{grpc_port} (PredictionService, ModelService)")
    return server, grpc_server


def serve_until_stopped(server, grpc_server, drain_seconds: float) -> None:
    """Serves until SIGTERM or Ctrl-C, then drains both servers within drain_seconds."""

    def stop(signum, frame):
        log.info(f"{signal.Signals(signum).name}: draining (at most {drain_seconds} s)")
        server.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    # gRPC refuses new calls at once and drains those in flight meanwhile, within the same
    # --drain-seconds (grpc cancels what is left then)
    grpc_stopped = grpc_server.stop(drain_seconds) if grpc_server else None
    left = server.stop(drain_seconds)
    if grpc_stopped:
        grpc_stopped.wait()
    if left:
        log.warning(f"stopped with {left} requests unfinished after {drain_seconds} s")
    else:
        log.info("stopped")


def main(argv=None) -> int:
    args = parse_args(argv)
    cli.load_tensorflow(intra_op_threads=args.intra_op_threads)
    server, grpc_server = start(args)
    host, port = server.server_address[:2]
    if not args.no_page:
        log.info(f"the page: http://{host}:{port}/ (try the model in a browser)")
    log.info(f"listening on http://{host}:{port}/v1/models/{args.model_name}")
    serve_until_stopped(server, grpc_server, args.drain_seconds)
    return 0
