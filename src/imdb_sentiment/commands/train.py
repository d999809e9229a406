"""Train the sentiment model, evaluate it on the test split, and export a SavedModel version.

Data is looked for in this order: --data PATH; a copy in the cache folder; Kaggle (when
credentials exist); the Stanford aclImdb tarball. Hyper-parameters come from the Config
dataclass (src/imdb_sentiment/config.py); the flags below override the common ones.
"""

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from imdb_sentiment import cli

log = logging.getLogger(__name__)


def parse_args(argv=None):
    from imdb_sentiment.config import DEFAULT_EXPORT_DIR, PRESETS, Config
    from imdb_sentiment.data import DEFAULT_CACHE

    d = Config()
    p = cli.Parser(__doc__)
    p.add_argument("--data", help="IMDB CSV (.csv/.gz/.zip), aclImdb folder or aclImdb_v1.tar.gz")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help="where downloads are kept (default %(default)s)",
    )
    p.add_argument(
        "--config", type=Path, help="a config.json from an earlier run; flags still override it"
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="starting hyper-parameters: 'fast' trains one LSTM member instead of three, "
        "over 6 epochs instead of 12 "
        "(--config and the flags below still override; default %(default)s)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        help=f"maximum epochs; early stopping may end sooner (default {d.epochs})",
    )
    p.add_argument(
        "--max-rows", type=int, help="use at most N shuffled rows of each split, for quick runs"
    )
    p.add_argument(
        "--seed", type=int, help=f"random seed for splits, shuffling and weights (default {d.seed})"
    )
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument(
        "--glove",
        dest="glove_path",
        help="GloVe text file (.txt/.gz/.zip); default: the offline 50d package",
    )
    p.add_argument(
        "--glove-dim",
        type=int,
        choices=(50, 100, 200, 300),
        help="GloVe dimension; >50 downloads glove.6B.zip",
    )
    p.add_argument(
        "--train-embeddings",
        action="store_true",
        default=None,
        help="fine-tune GloVe instead of freezing it",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        help="folder for this run's config, logs and metrics (default runs/<time>); "
        "an interrupted run in it is resumed if its config "
        "and data are these, else refused",
    )
    p.add_argument(
        "--export-dir",
        type=Path,
        default=DEFAULT_EXPORT_DIR,
        help="model folder holding numbered versions, as TF Serving expects (default %(default)s)",
    )
    p.add_argument("--no-export", action="store_true", help="train and evaluate only")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start a new run even when an interrupted one with the same config and data can be "
        "resumed (by default it is: the newest such folder under runs/ continues from its "
        "last epoch checkpoint); with --run-dir, that run folder's earlier files "
        "are deleted",
    )
    p.add_argument(
        "--distribute",
        choices=("none", "mirrored", "multiworker"),
        default="none",
        help="tf.distribute strategy: mirrored = all local GPUs; multiworker = the cluster in "
        "TF_CONFIG. --batch-size is per replica (default %(default)s)",
    )
    p.add_argument(
        "--pretrained",
        type=Path,
        help="start the LSTM from this pretrained encoder folder (scripts/pretrain.py)",
    )
    p.add_argument(
        "--pretrain",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"find or make a pretrained encoder when unlabelled reviews are found "
        f"(default {d.pretrain}); it is kept under --cache-dir/encoders and reused",
    )
    p.add_argument(
        "--unlabelled",
        help="unlabelled reviews, for the bag (labelled by the trained LSTM) and for --pretrain: "
        "a CSV with a review column, an aclImdb folder or its tarball (default: found beside "
        "the data; none found, the bag fits the training reviews alone)",
    )
    p.add_argument(
        "--counterfactuals",
        metavar="PATH",
        help="folder of the counterfactual review pairs (train_paired.tsv, dev_paired.tsv of "
        "Kaushik et al., 2020), or 'none'. Default: $IMDB_SENTIMENT_COUNTERFACTUALS, else a copy "
        "in --cache-dir/cad or in a cad folder beside the data's, else downloaded (SHA-256 "
        "checked); offline and absent, training goes on without them",
    )
    p.add_argument(
        "--compare-baseline",
        action="store_true",
        help="also fit the TF-IDF + logistic regression baseline on the same splits and print both",
    )
    p.add_argument(
        "--skip-test",
        action="store_true",
        help="evaluate on validation only: for experiments, so the test split is read once, "
        "for the final model",
    )
    args = p.parse_args(argv)
    cfg = Config.load(args.config) if args.config else Config(**PRESETS[args.preset])
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Config)
        if getattr(args, f.name, None) is not None
    }
    if args.glove_dim:
        overrides["glove_dim"] = args.glove_dim
    return args, dataclasses.replace(cfg, **overrides)


def main(argv=None) -> int:
    args, cfg = parse_args(argv)
    cli.load_tensorflow(run_an_op=args.distribute != "multiworker")
    from imdb_sentiment import counterfactuals, data
    from imdb_sentiment.baseline import fit_baseline, fit_tfidf
    from imdb_sentiment.evaluate import correct, edits, evaluate_splits, format_table, mcnemar
    from imdb_sentiment.export import export
    from imdb_sentiment.files import UserError, save_model, write_json
    from imdb_sentiment.pretrain import Encoder, find_or_make
    from imdb_sentiment.report import paired_note, write_report
    from imdb_sentiment.runs import choose_run_dir, finished_run
    from imdb_sentiment.short import short_inputs
    from imdb_sentiment.train import is_chief, make_strategy, train, writable_run_dir

    if args.distribute == "multiworker" and not args.run_dir:
        raise UserError(
            "--distribute multiworker needs --run-dir: give every worker the same "
            "folder, on a file system they share (the chief writes it; the others "
            "resume from it)"
        )
    if args.distribute == "multiworker" and args.fresh:  # one worker would empty it under another
        raise UserError(
            "--distribute multiworker does not take --fresh: delete the run folder "
            "before starting the workers"
        )
    strategy = make_strategy(args.distribute)
    splits = data.load(args.data, cfg, args.cache_dir)
    if finished_run(args.run_dir, args.fresh, cfg, splits.checksum):
        print(
            f"{args.run_dir}: this run is finished, with this config and data: its model is "
            f"{args.run_dir / 'model.keras'}, its metrics {args.run_dir / 'metrics.json'} and "
            f"its report {args.run_dir / 'report.md'}. Nothing was trained; add --fresh to "
            "train it again (the run is replaced)"
        )
        return 0
    run_dir = choose_run_dir(args.run_dir, args.fresh, cfg, splits.checksum)
    log.info(f"run: {run_dir}")
    pairs_folder = counterfactuals.find(args.counterfactuals, splits.source, args.cache_dir)
    pairs = counterfactuals.load(pairs_folder, splits, cfg) if pairs_folder else None
    unlabelled_path = data.find_unlabelled(splits.source, args.unlabelled)
    encoder = None
    if args.pretrained:
        encoder = Encoder.load(args.pretrained)
    elif cfg.pretrain:
        if args.distribute == "multiworker":  # every worker would pretrain into the same cache
            raise UserError(
                "--distribute multiworker cannot pretrain: make the encoder first with "
                "scripts/pretrain.py and give it with --pretrained DIR, or --no-pretrain"
            )
        encoder = find_or_make(cfg, splits, unlabelled_path, args.cache_dir)
    unlabelled = None
    if cfg.bag_unlabelled and cfg.ngram_buckets:
        unlabelled = data.read_unlabelled(unlabelled_path) if unlabelled_path else []
        unlabelled = unlabelled[: cfg.max_rows or None]  # a quick run stays quick
        log.info(
            f"bag: {len(unlabelled)} unlabelled reviews from {unlabelled_path}"
            if unlabelled
            else "bag: no unlabelled reviews found (give them with --unlabelled PATH); "
            "it fits the training reviews alone"
        )
    # Only the chief writes run_dir and the export; other workers write a folder removed on exit.
    with writable_run_dir(run_dir, strategy) as out:
        cfg.save(out / "config.json")
        write_json(
            out / "data_report.json",
            {
                "source": splits.source,
                "checksum": splits.checksum,
                **splits.report,
                "counterfactuals": pairs.report if pairs else None,
            },
        )
        trained = train(
            cfg,
            splits,
            out,
            strategy=strategy,
            encoder=encoder,
            unlabelled=unlabelled,
            counterfactuals=pairs,
        )
    if not is_chief(strategy):
        return 0  # the rest needs no other worker: the trained model predicts in this process
    vec = trained.vectorizer
    # The test split is read here, once, after every choice was made on validation.
    results, predictions = evaluate_splits(
        trained.model, vec, splits, ("val",) if args.skip_test else ("val", "test")
    )
    metrics = {
        **results,
        "epochs_run": len(trained.history["loss"]),
        "train_seconds": trained.train_seconds,
        "parts": trained.parts,
        "encoder": encoder.describe() if encoder else None,
        "pairs_trained_on": trained.pairs,
    }
    table = {f"model {k}": v for k, v in results.items()}
    # Always fitted (about 30 s on the full data): the short-input measure is judged against it.
    tfidf = fit_tfidf(splits)

    def baseline(texts):
        return tfidf.predict_proba(texts)[:, 1]

    metrics["short_inputs"] = short_inputs(
        trained.model, vec, splits.val.review, splits.val.label, baseline
    )
    if pairs:  # the held-out training pairs for choosing; the dev pairs read once, like test
        metrics["edits"] = {"held_out": edits(trained.model, vec, pairs.held_out, baseline)}
        if not args.skip_test:
            metrics["edits"]["dev"] = edits(trained.model, vec, pairs.dev, baseline)
    if args.compare_baseline:
        metrics["baseline"], base_p = fit_baseline(
            splits, with_test=not args.skip_test, model=tfidf
        )
        table.update({f"baseline {k}": metrics["baseline"][k] for k in results})
        if "test" in results:  # paired: both scored on the same test reviews
            y, p = predictions["test"].labels, predictions["test"].probabilities
            metrics["model_vs_baseline"] = mcnemar(
                correct(y, p), correct(y, base_p["test"]), names=("model", "baseline")
            )
    write_json(run_dir / "metrics.json", metrics)
    save_model(trained.model, run_dir / "model.keras")
    print(format_table(table))
    if "model_vs_baseline" in metrics:
        print(paired_note(metrics["model_vs_baseline"]))
    t = time.perf_counter()
    report = write_report(run_dir, predictions, metrics, run_dir / "history.csv")
    log.info(f"report: {report} and its plots in {time.perf_counter() - t:.1f}s")

    if not args.no_export:
        info = {
            "config": cfg.to_dict(),
            "vocabulary_size": vec.size,
            "embedding": trained.embedding_report,
            "metrics": metrics,
            "data": {"source": splits.source, "checksum": splits.checksum, **splits.report},
            "run_dir": str(run_dir.resolve()),
        }
        export(trained.model, vec, info, args.export_dir)
    return 0
