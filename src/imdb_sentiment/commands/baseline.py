"""TF-IDF (word 1-2-grams, sublinear tf) + logistic regression on the same splits as train.py.

The regularisation C is chosen on the validation rows; the test rows are read once, at the end.
Prints the same metrics table as train.py and writes them as JSON with --json.
"""

from pathlib import Path

from imdb_sentiment import cli


def main(argv=None) -> int:
    from imdb_sentiment.config import Config
    from imdb_sentiment.data import DEFAULT_CACHE

    p = cli.Parser(__doc__)
    p.add_argument("--data", help="same sources as train.py")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument(
        "--seed", type=int, default=Config.seed, help="must match train.py's for the same split"
    )
    p.add_argument("--max-rows", type=int, help="use at most N shuffled rows of each split")
    p.add_argument("--json", type=Path, help="write the metrics here")
    args = p.parse_args(argv)

    from imdb_sentiment import data
    from imdb_sentiment.baseline import fit_baseline
    from imdb_sentiment.evaluate import format_table

    splits = data.load(args.data, Config(seed=args.seed, max_rows=args.max_rows), args.cache_dir)
    result, _ = fit_baseline(splits)
    print(format_table({"baseline val": result.val, "baseline test": result.test}))
    print(f"C={result.C:g}, {result.seconds:.0f}s")
    if args.json:
        from imdb_sentiment.files import write_json

        write_json(args.json, result.to_dict())
    return 0
