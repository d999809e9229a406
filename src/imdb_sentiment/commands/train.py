"""Train the sentiment model, evaluate it on the test split, and export a SavedModel version.

Data is looked for in this order: --data PATH; a copy in the cache folder; Kaggle (when
credentials exist); the Stanford aclImdb tarball. Hyper-parameters come from the Config
dataclass (src/imdb_sentiment/config.py); the flags below override the common ones.
"""

import argparse
import dataclasses
import sys
from pathlib import Path

from imdb_sentiment import cli


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


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv)
    cli.load_tensorflow(run_an_op=args.distribute != "multiworker")
    from imdb_sentiment.evaluate import format_table
    from imdb_sentiment.pipeline import Sources, Steps, fit
    from imdb_sentiment.report import paired_note

    sources = Sources(args.cache_dir, args.counterfactuals, args.unlabelled, args.pretrained)
    steps = Steps(
        export_dir=None if args.no_export else args.export_dir,
        compare_baseline=args.compare_baseline,
        skip_test=args.skip_test,
        fresh=args.fresh,
        distribute=args.distribute,
        argv=list(sys.argv[1:] if argv is None else argv),
    )
    run = fit(args.data, cfg, run_dir=args.run_dir, sources=sources, steps=steps)
    if run is None:  # a worker other than the chief: the chief reports
        return 0
    if not run.trained:
        print(
            f"{run.run_dir}: this run is finished, with this config and data: its model is "
            f"{run.run_dir / 'model.keras'}, its metrics {run.run_dir / 'metrics.json'} and "
            f"its report {run.run_dir / 'report.md'}. Nothing was trained; add --fresh to "
            "train it again (the run is replaced)"
        )
        return 0
    r = run.results
    table = {f"model {k}": v for k, v in r.splits().items()}
    if r.baseline:
        table |= {f"baseline {k}": getattr(r.baseline, k) for k in r.splits()}
    print(format_table(table))
    if r.model_vs_baseline:
        print(paired_note(r.model_vs_baseline))
    return 0
