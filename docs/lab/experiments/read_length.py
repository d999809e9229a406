"""Twelfth round of docs/lab/experiments.md: does a trained model gain from reading longer reviews?

For one run folder, the model as trained (its blend weights too) reads validation reviews cut to
other lengths than the max_len it was trained on; head_tokens keeps its share of the length.
Prints the blend and each part alone on validation, and both on the reviews longer than the
trained length. Validation only; the test split is never read.

  PYTHONPATH=src python docs/lab/experiments/read_length.py RUN_DIR DATA
"""

import sys

from imdb_sentiment import cli, data, text
from imdb_sentiment.features import predict_features
from imdb_sentiment.model import scores_and_parts
from imdb_sentiment.runs import load_artifacts

LENGTHS = (1.0, 1.25, 1.5, 2.0, 3.0)  # times the trained max_len


def main(run: str, source: str) -> None:
    cli.load_tensorflow()
    art = load_artifacts(run)
    cfg = art.cfg
    val = data.load(source, cfg).val
    tokens = text.tokenize_corpus(val.review.tolist())
    long = tokens.row_lengths().numpy() > cfg.max_len
    print(f"{len(val)} validation reviews, {100 * long.mean():.1f}% over {cfg.max_len} tokens")
    scorer, parts = scores_and_parts(art.model)
    y = val.label.to_numpy() == 1
    for times in LENGTHS:
        vectorizer = text.Vectorizer(
            art.vectorizer.vocabulary,
            round(cfg.max_len * times),
            round(cfg.head_tokens * times),
            cfg.ngram_buckets,
            cfg.ngram_order,
        )
        s = predict_features(scorer, vectorizer.features(tokens))
        right = {"blend": (s[:, 0] >= 0.5) == y}
        right.update({part: (s[:, i] >= 0) == y for i, part in enumerate(parts, 1)})
        print(
            f"max_len {vectorizer.max_len}: "
            + ", ".join(f"{k} {100 * v.mean():.2f}" for k, v in right.items())
            + f"; on the longer reviews: LSTM {100 * right['lstm'][long].mean():.2f}, "
            f"blend {100 * right['blend'][long].mean():.2f}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
