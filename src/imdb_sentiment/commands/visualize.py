"""Plot the GloVe vectors of chosen words in 2-D (PCA and t-SNE), coloured by the model's polarity.

A word's polarity is the trained model's log-odds of "positive" for a review made of that word
alone. By default the words are the most polar among the 3,000 most frequent alphabetic words of
the training vocabulary (half positive, half negative). The GloVe vectors are the model's own
frozen embedding rows, so the picture shows what the LSTM reads.

  python scripts/visualize_embeddings.py runs/20261123-101500
  python scripts/visualize_embeddings.py saved_models/imdb_sentiment \
      --words good,bad,great,awful --out plots
"""

import logging
from pathlib import Path

from imdb_sentiment import cli

log = logging.getLogger(__name__)


def main(argv=None) -> int:
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
    args = p.parse_args(argv)
    cli.load_tensorflow()

    import numpy as np
    import tensorflow as tf

    from imdb_sentiment import report
    from imdb_sentiment.files import UserError
    from imdb_sentiment.model import logit_model
    from imdb_sentiment.runs import load_artifacts

    art = load_artifacts(args.path)
    vocab = art.vectorizer.vocabulary
    if args.words:
        asked = [w.strip().lower() for w in args.words.split(",") if w.strip()]
        known = set(vocab)
        missing = [w for w in asked if w not in known]
        if missing:
            log.info(f"not in the model's vocabulary, left out: {', '.join(missing)}")
        words = [w for w in asked if w in known]
        if len(words) < 3:
            raise UserError("at least 3 words of the model's vocabulary are needed for a 2-D view")
    else:
        words = [w for w in vocab[:3000] if w.isalpha()]
    logits = np.asarray(logit_model(art.model).predict(art.vectorizer(words), verbose=0)).reshape(
        -1
    )
    if not args.words:  # the most polar half positive, half negative
        order = np.argsort(logits)
        pick = np.concatenate(
            [order[: args.count // 2], order[::-1][: args.count - args.count // 2]]
        )
        words, logits = [words[i] for i in pick], logits[pick]
    ids = art.vectorizer.table.lookup(tf.constant(words)).numpy()
    # GloVe's columns only: the map is of GloVe's space, and the colours give the model's verdict
    vectors = art.model.get_layer("glove").get_weights()[0][ids, : art.cfg.glove_dim]
    out = args.out or (args.path if (args.path / "config.json").exists() else Path("."))
    for path in report.plot_embeddings(words, vectors, logits, out, seed=args.seed):
        log.info(f"wrote {path}")
    return 0
