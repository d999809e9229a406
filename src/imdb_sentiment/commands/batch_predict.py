"""Predict the sentiment of many review files on Ray Data, locally or on a Ray cluster.

Inputs are the files predict.py --file reads (.txt: one review per line; .csv: a `review` column;
.jsonl: objects with a `review` field, or plain strings): paths or globs ("shards/*.jsonl"), on
any file system fsspec reaches (local, s3://, gs://, ... with that file system's fsspec package
installed on every node). Each file is read by one task, so split a large input into shards to
read it in parallel.

Output, under --out:
  predictions/*.json   JSON lines {"file", "line", "label", "probability"}, in no particular
                       order; file + line (the line a record starts on, from 1) identify the
                       review and stay the same however the input is sharded across files
  dead_letter/*.json   malformed records {"file", "line", "reason", "raw"} (written only if any):
                       a bad record never stops the job

  python scripts/batch_predict.py "reviews/*.csv" --out scored/
  python scripts/batch_predict.py "s3://bucket/reviews/*.jsonl" --out s3://bucket/scored \\
      --address auto --workers 8 --model /shared/saved_models/imdb_sentiment

Without --address a local Ray is started for the job (RAY_ADDRESS, when set, is used instead).
On a cluster, every node needs this package installed (pip install 'imdb-sentiment[ray]') and
the model folder readable at the same path; joining one needs its token (RAY_AUTH_MODE=token,
~/.ray/auth_token). docs/scaling.md tells more; docs/results.md has the figures.
"""

import logging

from imdb_sentiment import cli

log = logging.getLogger(__name__)


def main(argv=None) -> int:
    args = parse_args(argv)
    from imdb_sentiment.batch import require_ray, run

    require_ray()  # before anything slow: a missing extra is a one-line error
    cli.load_tensorflow()  # the driver checks the model; its start-up notices held back
    counts = run(
        args.inputs,
        args.out.rstrip("/"),
        args.model,
        address=args.address,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        batch_size=args.batch_size,
        intra_op_threads=args.intra_op_threads,
    )
    log.info(f"done: {counts.files} file(s), {counts.dead_letter} malformed record(s)")
    return 0


def parse_args(argv):
    p = cli.Parser(__doc__)
    p.add_argument("inputs", nargs="+", help="review files or globs (quote a glob)")
    p.add_argument("--out", required=True, help="output folder (local path or URL)")
    p.add_model_argument()
    p.add_argument(
        "--address",
        help="the Ray cluster to run on ('auto': the one this node belongs to, or "
        "ray://HOST:10001); default: a local Ray started for the job",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="model workers (Ray actors; default %(default)s)"
    )
    p.add_argument(
        "--cpus-per-worker",
        type=float,
        default=1.0,
        help="CPUs Ray reserves for each worker (default %(default)s)",
    )
    p.add_argument(
        "--batch-size", type=int, default=256, help="reviews per model call (default %(default)s)"
    )
    p.add_intra_op_threads_argument()
    args = p.parse_args(argv)
    if args.workers < 1 or args.batch_size < 1:
        p.error("--workers and --batch-size must be at least 1")
    return args
