"""Evaluate a trained model again and write its report (report.md and PNG plots).

PATH is a run folder made by train.py (runs/<time>) or an exported model (a version folder, or
the folder of versions: the newest is used). The splits are rebuilt from the data with the
model's own config (same seed, same validation rows), so the figures match those of training.
Data other than the model was trained on (compared by checksum) is refused unless --other-data:
its seeded split may put training reviews into validation and test.

  python scripts/evaluate.py runs/20261123-101500 --data ../shared/data/imdb/imdb_50k_split.csv.gz
  python scripts/evaluate.py saved_models/imdb_sentiment --splits val --out reports/v3
"""

from pathlib import Path

from imdb_sentiment import cli


def parse_args(argv: list[str] | None = None):
    from imdb_sentiment.data import DEFAULT_CACHE

    p = cli.Parser(__doc__)
    p.add_argument("path", type=Path, help="run folder or exported model")
    p.add_argument("--data", help="same sources as train.py")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument(
        "--splits",
        default="val,test",
        help="comma-separated: val, test (default %(default)s). Choose on val; read test for "
        "reports",
    )
    p.add_argument(
        "--other-data",
        action="store_true",
        help="evaluate even on data other than the model was trained on (its splits "
        "may then hold training reviews)",
    )
    p.add_argument(
        "--counterfactuals",
        metavar="PATH",
        help="folder of the counterfactual review pairs, or 'none'; found as train.py finds "
        "them. With val, the held-out training pairs are scored; with test, the dev pairs",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="folder for the report (default: PATH when it is a run folder, else runs/eval-<time>)",
    )
    p.add_intra_op_threads_argument()
    args = p.parse_args(argv)
    args.splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    if not args.splits or set(args.splits) - {"val", "test"}:
        p.error("--splits takes val, test or val,test")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.load_tensorflow(intra_op_threads=args.intra_op_threads)
    from imdb_sentiment.evaluate import format_table
    from imdb_sentiment.pipeline import Sources, evaluate_model

    evaluation = evaluate_model(
        args.path,
        args.data,
        args.splits,
        sources=Sources(cache_dir=args.cache_dir, counterfactuals=args.counterfactuals),
        other_data=args.other_data,
        out=args.out,
    )
    print(format_table({f"model {k}": v for k, v in evaluation.results.splits().items()}))
    return 0
