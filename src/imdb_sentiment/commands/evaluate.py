"""Evaluate a trained model again and write its report (report.md and PNG plots).

PATH is a run folder made by train.py (runs/<time>) or an exported model (a version folder, or
the folder of versions: the newest is used). The splits are rebuilt from the data with the
model's own config (same seed, same validation rows), so the figures match those of training.
Data other than the model was trained on (compared by checksum) is refused unless --other-data:
its seeded split may put training reviews into validation and test.

  python scripts/evaluate.py runs/20261123-101500 --data ../shared/data/imdb/imdb_50k_split.csv.gz
  python scripts/evaluate.py saved_models/imdb_sentiment --splits val --out reports/v3
"""

import logging
from pathlib import Path

from imdb_sentiment import cli

log = logging.getLogger(__name__)


def main(argv=None) -> int:
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
    cli.load_tensorflow(intra_op_threads=args.intra_op_threads)
    names = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    if not names or set(names) - {"val", "test"}:
        p.error("--splits takes val, test or val,test")

    from imdb_sentiment import counterfactuals, data
    from imdb_sentiment.evaluate import edits, evaluate_splits, format_table
    from imdb_sentiment.files import UserError, write_json
    from imdb_sentiment.report import write_report
    from imdb_sentiment.runs import RUNS_DIR, load_artifacts, new_run_dir
    from imdb_sentiment.short import short_inputs

    art = load_artifacts(args.path)
    splits = data.load(args.data, art.cfg, args.cache_dir)
    # The splits are rebuilt with the model's seed: on other data, "test" may hold training reviews.
    then = (art.data or {}).get("checksum")
    same_data = then == splits.checksum
    if not same_data:
        what = (
            f"not the data {args.path} was trained on ({art.data.get('source')}; data checksum "
            f"{then[:12]}… -> {splits.checksum[:12]}…)"
            if then
            else f"not checked against the data {args.path} was trained on (none recorded)"
        )
        if not args.other_data:
            raise UserError(
                f"{splits.source}: {what}; its validation and test splits may hold "
                f"training reviews. Give the training data with --data, or add "
                f"--other-data to evaluate anyway"
            )
        log.warning(
            f"{splits.source}: {what}; the splits may overlap training, so the figures "
            f"may be optimistic"
        )
    results, predictions = evaluate_splits(art.model, art.vectorizer, splits, names)
    print(format_table({f"model {k}": v for k, v in results.items()}))
    if "val" in names:  # the model and its parts; fitting the baseline is train.py's work
        results["short_inputs"] = short_inputs(
            art.model, art.vectorizer, splits.val.review, splits.val.label
        )
    pairs_folder = counterfactuals.find(args.counterfactuals, splits.source, args.cache_dir)
    if pairs_folder:  # the same held-out pairs as at training: the model's seed and splits
        pairs = counterfactuals.load(pairs_folder, splits, art.cfg)
        read = {"held_out": pairs.held_out} if "val" in names else {}
        if "test" in names:  # the dev pairs are read with the test split, for reports only
            read["dev"] = pairs.dev
        results["edits"] = {k: edits(art.model, art.vectorizer, p) for k, p in read.items()}
    out = args.out or (
        args.path if (args.path / "config.json").exists() else new_run_dir(RUNS_DIR, "eval-")
    )
    out.mkdir(parents=True, exist_ok=True)
    replaced = [name for name in ("evaluation.json", "report.md") if (out / name).exists()]
    if replaced:  # a report is rebuilt from the model; nothing trained is in these files
        log.info(f"report: {' and '.join(replaced)} in {out} rewritten with this evaluation")
    write_json(
        out / "evaluation.json",
        {
            "model": str(args.path.resolve()),
            "data": splits.source,
            "checksum": splits.checksum,
            "training_data": same_data,
            **results,
        },
    )
    title = f"Evaluation of {args.path}"
    log.info(f"report: {write_report(out, predictions, results, art.history_csv, title=title)}")
    return 0
