"""Plot the GloVe vectors of chosen words in 2-D (PCA and t-SNE), coloured by the model's polarity.

A word's polarity is the trained model's log-odds of "positive" for a review made of that word
alone. By default the words are the most polar among the 3,000 most frequent alphabetic words of
the training vocabulary (half positive, half negative). The GloVe vectors are the model's own
frozen embedding rows, so the picture shows what the LSTM reads.

  python scripts/visualize_embeddings.py runs/20261123-101500
  python scripts/visualize_embeddings.py saved_models/imdb_sentiment \
      --words good,bad,great,awful --out plots
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from imdb_sentiment import cli

if TYPE_CHECKING:
    import numpy as np

    from imdb_sentiment.runs import Artifacts

log = logging.getLogger(__name__)


def main(argv=None) -> int:
    args = parse_args(argv)
    cli.load_tensorflow()
    import tensorflow as tf

    from imdb_sentiment import report
    from imdb_sentiment.runs import load_artifacts

    art = load_artifacts(args.path)
    if args.words:
        words, logits = asked_words(art, args.words)
    else:
        words, logits = polar_words(art, args.count)
    ids = art.vectorizer.table.lookup(tf.constant(words)).numpy()
    # GloVe's columns only: the map is of GloVe's space, and the colours give the model's verdict
    vectors = art.model.get_layer("glove").get_weights()[0][ids, : art.cfg.glove_dim]
    out = args.out or (args.path if (args.path / "config.json").exists() else Path("."))
    for path in report.plot_embeddings(words, vectors, logits, out, seed=args.seed):
        log.info(f"wrote {path}")
    return 0


def parse_args(argv):
    p = cli.Parser(__doc__)
    p.add_argument("path", type=Path, help="run folder or exported model")
    p.add_argument(
        "--words", help="comma-separated words to plot (default: the most polar frequent words)"
    )
    p.add_argument(
        "--count", type=int, default=60, help="words picked by default (default %(default)s)"
    )
    p.add_argument(
        "--out",
        type=Path,
        help="folder for embeddings_pca.png and embeddings_tsne.png "
        "(default: PATH when it is a run folder, else the current folder)",
    )
    p.add_argument("--seed", type=int, default=0, help="t-SNE seed (default %(default)s)")
    return p.parse_args(argv)


def asked_words(art: Artifacts, asked: str) -> tuple[list[str], np.ndarray]:
    """The words of `asked` (comma-separated) in the model's vocabulary, at least 3, and the
    model's log-odds of each alone."""
    from imdb_sentiment.files import UserError

    words = [w.strip().lower() for w in asked.split(",") if w.strip()]
    known = set(art.vectorizer.vocabulary)
    missing = [w for w in words if w not in known]
    if missing:
        log.info(f"not in the model's vocabulary, left out: {', '.join(missing)}")
    words = [w for w in words if w in known]
    if len(words) < 3:
        raise UserError("at least 3 words of the model's vocabulary are needed for a 2-D view")
    return words, word_logits(art, words)


def polar_words(art: Artifacts, count: int) -> tuple[list[str], np.ndarray]:
    """The `count` most polar of the 3,000 most frequent alphabetic words of the vocabulary,
    half positive, half negative, and the model's log-odds of each alone."""
    import numpy as np

    words = [w for w in art.vectorizer.vocabulary[:3000] if w.isalpha()]
    logits = word_logits(art, words)
    order = np.argsort(logits)
    pick = np.concatenate([order[: count // 2], order[::-1][: count - count // 2]])
    return [words[i] for i in pick], logits[pick]


def word_logits(art: Artifacts, words: list[str]) -> np.ndarray:
    """The model's log-odds of "positive" for each word as a review alone."""
    import numpy as np

    from imdb_sentiment.model import logit_model

    logits = logit_model(art.model).predict(art.vectorizer(words), verbose=0)
    return np.asarray(logits).reshape(-1)
