"""Predict the sentiment of reviews with an exported model; prints one JSON line per review.

Reviews come from the arguments, from --file (.txt: one review per line, a blank line being an
empty review; .csv: a `review` column; .jsonl: objects with a `review` field, or plain strings),
or from standard input (one review per line). Output order is input order. Large files are read
and predicted in chunks, so memory stays bounded. A malformed record (invalid JSON, a CSV row with
another number of fields than the header) stops with its file and line; batch_predict.py sets such
records aside instead.

  python scripts/predict.py "A wonderful, moving film." "Dull and far too long."
  python scripts/predict.py --file reviews.csv > predictions.jsonl
  python scripts/predict.py --server grpc://localhost:8500 "A wonderful, moving film."
  python scripts/predict.py --explain "Great cast, but a dull and pointless plot." --html why.html
  python scripts/predict.py --card

--explain shows, for each review, which words pushed the prediction towards positive or negative:
each of the model's tokens is removed in turn and the change of the model's log-odds is measured
on the remaining tokens (occlusion). The probability shown is the one predicted for the review.

--card prints the --model version's model card (model_card.md, written at export) and reads
no reviews.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from imdb_sentiment import cli
from imdb_sentiment.files import UserError
from imdb_sentiment.progress import bar, shown
from imdb_sentiment.review_files import file_format, records

if TYPE_CHECKING:  # TensorFlow loads only once a command needs it, so --help stays fast
    from imdb_sentiment.predict import GrpcPredictor, Predictor, RemotePredictor

log = logging.getLogger(__name__)

CHUNK = 8192  # reviews read, predicted and written at a time


def file_reviews(path: Path) -> Iterator[str]:
    """The reviews of a .txt, .csv or .jsonl file; a malformed record stops with its line."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for record in records(f, file_format(path.name)):
            if record.error:
                raise UserError(f"{path}:{record.line}: {record.error}")
            yield record.review


def reviews(args: argparse.Namespace) -> Iterator[str]:
    if args.texts:
        yield from args.texts
        return
    if args.file is None:
        if sys.stdin.isatty():
            raise UserError(
                "no reviews given: pass them as arguments, with --file, or on standard input"
            )
        yield from (line.rstrip("\r\n") for line in sys.stdin)
        return
    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    yield from file_reviews(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.Parser(__doc__)
    p.add_argument("texts", nargs="*", help="reviews to classify")
    p.add_argument("--file", help="a .txt, .csv or .jsonl file of reviews")
    p.add_model_argument()
    p.add_argument(
        "--card",
        action="store_true",
        help="print the model card of the --model version (what it was trained on, how it "
        "scored, what it is for) and exit, reading no reviews",
    )
    p.add_argument(
        "--server",
        metavar="URL",
        help="send the reviews to TF Serving (or scripts/serve.py): its REST endpoint, e.g. "
        "http://localhost:8501, or its gRPC one, e.g. grpc://localhost:8500",
    )
    p.add_argument(
        "--model-name",
        default="imdb_sentiment",
        help="model name on the server (default %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds per server request (default %(default)s)",
    )
    p.add_argument(
        "--batch-size", type=int, help="reviews per model call (default 256 local, 64 to a server)"
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="show which words pushed each prediction up or down (word occlusion; local model "
        "only)",
    )
    p.add_argument(
        "--html",
        type=Path,
        help="with --explain: also write the highlighted reviews to this HTML file",
    )
    p.add_argument(
        "--top",
        type=int,
        default=5,
        help="with --explain: words listed per direction (default %(default)s)",
    )
    p.add_intra_op_threads_argument()
    args = p.parse_args(argv)
    if args.card and args.server:
        p.error("--card reads the local model (--model), not --server")
    if args.explain and args.server:
        p.error("--explain needs the local model (--model), not --server")
    if args.html and not args.explain:
        p.error("--html goes with --explain")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.load_tensorflow(intra_op_threads=args.intra_op_threads)
    if args.card:
        from imdb_sentiment.card import read_card
        from imdb_sentiment.export import resolve_version

        sys.stdout.write(read_card(resolve_version(args.model)))
        return 0
    from imdb_sentiment.predict import Predictor, remote_predictor

    source = reviews(args)
    first = list(itertools.islice(source, CHUNK))  # reads input errors before the slow model load
    if args.server:
        predictor = remote_predictor(args.server, args.model_name, args.timeout)
        batch = args.batch_size or 64
    else:
        predictor, batch = Predictor(args.model), args.batch_size or 256
    texts = itertools.chain(first, source)
    if args.explain:
        explain_all(predictor, texts, batch, args.top, args.html)
    else:
        write_predictions(predictor, texts, batch, expected_reviews(args))
    return 0


def write_predictions(
    predictor: Predictor | GrpcPredictor | RemotePredictor,
    texts: Iterator[str],
    batch: int,
    total: int | None,
) -> None:
    """One JSON line per review, in input order, CHUNK reviews at a time."""
    with bar(total=total, desc="predicting") as progress:
        while chunk := list(itertools.islice(texts, CHUNK)):
            for result in predictor.predict(chunk, batch):
                sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
            progress.update(len(chunk))


def expected_reviews(args: argparse.Namespace) -> int | None:
    """For the progress bar's time left: a file's line count, exact for .txt and .jsonl, close for
    a CSV (a quoted review may span lines). Counted only when a bar is shown."""
    if not shown() or args.texts or args.file is None:
        return None
    with open(args.file, "rb") as f:
        lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    return max(lines - (Path(args.file).suffix.lower() == ".csv"), 0)  # less the CSV header


def explain_all(
    predictor: Predictor, texts: Iterator[str], batch: int, top: int, html: Path | None
) -> None:
    from imdb_sentiment.explain import explain, html_page, render_html, render_terminal, summary
    from imdb_sentiment.files import atomic_write_text

    pages = []
    for text in texts:
        e = explain(predictor, text, batch)
        print(summary(e, top))
        print("  " + render_terminal(e, color=sys.stdout.isatty()))
        pages.append(render_html(e))
    if html:
        atomic_write_text(html, html_page(pages))
        log.info(f"wrote {html}")
