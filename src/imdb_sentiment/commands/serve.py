"""Serve exported models over TF Serving's REST API, for machines without TF Serving.

  python scripts/serve.py                      # saved_models/imdb_sentiment on 127.0.0.1:8501
  curl -d '{"instances": ["A wonderful film."]}' localhost:8501/v1/models/imdb_sentiment:predict

Routes: GET /v1/models/<name> (status), GET /v1/models/<name>/metadata (signatures),
POST /v1/models/<name>[/versions/<v>]:predict with {"instances": [...]} or {"inputs": [...]}.
The newest version folder is served; a new one is picked up within --poll-seconds, no restart.
"""

import logging
from pathlib import Path

from imdb_sentiment import cli

log = logging.getLogger(__name__)


def main(argv=None) -> int:
    from imdb_sentiment.config import DEFAULT_EXPORT_DIR

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
        "--max-body-mb", type=float, default=8.0, help="largest request body (default %(default)s)"
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=1024,
        help="most reviews in one request (default %(default)s)",
    )
    p.add_argument(
        "--poll-seconds", type=float, default=2.0, help="how often to look for new versions"
    )
    args = p.parse_args(argv)
    cli.load_tensorflow()

    from imdb_sentiment.serve import make_server

    try:
        server, repo = make_server(
            args.model_dir,
            args.model_name,
            args.host,
            args.port,
            int(args.max_body_mb * (1 << 20)),
            args.max_batch,
            args.poll_seconds,
        )
    except OSError as e:
        from imdb_sentiment.files import UserError

        raise UserError(f"cannot listen on {args.host}:{args.port}: {e.strerror}") from None
    host, port = server.server_address[:2]
    log.info(f"serving {args.model_name} versions {repo.loaded_versions()} from {args.model_dir}")
    log.info(f"listening on http://{host}:{port}/v1/models/{args.model_name}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
