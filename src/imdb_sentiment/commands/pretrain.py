"""Pretrain the LSTM encoder as language models on the unlabelled and training reviews.

Two language models (one per reading direction) learn from the unlabelled reviews plus the
training split's, never from validation or test reviews.

The labelled data is found as train.py finds it (--data, or the cache folder); its training split
gives the vocabulary, and the same split must be used when training from the encoder. Unlabelled
reviews are taken from --unlabelled PATH (imdb_unsup_50k.csv.gz, an aclImdb folder or
aclImdb_v1.tar.gz), else from beside the data: imdb_unsup_50k.csv.gz in the CSV's folder, or
train/unsup in the aclImdb folder or tarball.

The encoder folder (--out; by default <cache-dir>/encoders/<key of the settings and data>, where
`train.py --pretrain` looks for it) holds encoder.npz (the two LSTMs' weights), config.json,
vocab.txt, history.csv (training and held-out language-model loss and seconds per epoch) and
pretrain_report.json. It is written whole or not at all. Killed, the same command resumes from
the last finished epoch. Use it with: train.py --pretrained DIR (same --data and --config).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from imdb_sentiment import cli

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from imdb_sentiment import data
    from imdb_sentiment.config import Config

    d = Config()
    p = cli.Parser(__doc__)
    p.add_argument("--data", help="IMDB CSV (.csv/.gz/.zip), aclImdb folder or aclImdb_v1.tar.gz")
    p.add_argument(
        "--unlabelled",
        help="unlabelled reviews: a CSV with a review column, an "
        "aclImdb folder or its tarball (default: beside --data)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=data.DEFAULT_CACHE,
        help="where downloads and encoders are kept (default %(default)s)",
    )
    p.add_argument("--out", type=Path, help="encoder folder (default <cache-dir>/encoders/<key>)")
    p.add_argument(
        "--config",
        type=Path,
        help="a config.json; its pretrain_* fields choose the "
        "objective, epochs, learning rate, batch size",
    )
    p.add_argument("--epochs", type=int, help=f"pretraining epochs (default {d.pretrain_epochs})")
    p.add_argument(
        "--seed", type=int, help=f"random seed for splits, weights and shuffling (default {d.seed})"
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start over, ignoring an interrupted run's checkpoint, and replace a finished encoder",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.load_tensorflow()
    from imdb_sentiment import data, pretrain  # TensorFlow loads here, after --help
    from imdb_sentiment.config import Config

    cfg = Config.load(args.config) if args.config else Config()
    overrides = {"pretrain_epochs": args.epochs, "seed": args.seed}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})

    splits = data.load(args.data, cfg, args.cache_dir)
    source, unlabelled = unlabelled_reviews(splits.source, args.unlabelled)
    out = args.out or pretrain.default_dir(cfg, splits, unlabelled, args.cache_dir)
    pretrain.pretrain(cfg, splits, unlabelled, out, fresh=args.fresh, unlabelled_source=str(source))
    return 0


def unlabelled_reviews(data_source: str, given: str | None) -> tuple[Path, list[str]]:
    """The reviews to pretrain on and where they are: `given` (--unlabelled), else beside the
    labelled data. Pretraining without any would learn nothing, so it stops here."""
    from imdb_sentiment import data
    from imdb_sentiment.files import UserError

    source = data.find_unlabelled(data_source, given)
    unlabelled = data.read_unlabelled(source) if source else []
    if not unlabelled:
        where = f"in {source}" if source else f"beside {data_source}"
        raise UserError(
            f"no unlabelled reviews found {where}; give them with --unlabelled PATH ("
            f"{data.UNSUP_CSV}, an aclImdb folder or aclImdb_v1.tar.gz)"
        )
    log.info(f"pretrain: {len(unlabelled)} unlabelled reviews from {source}")
    return source, unlabelled
