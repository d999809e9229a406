"""Minimal pairs (issue 40), sixth round: does the LSTM read an edit better one sentence at a time?

Most missed edits change under 6% of a review's tokens, and the LSTM, sure of the original it
trained on, moves the right way but not far enough. Read sentence by sentence, the edited
sentence is a whole input of its own rather than a few steps of 200, and the review it came from
is not there to be recalled. This scores every sentence of a review with the run's LSTM (and its
bag) and gives the blend each review's sentence statistics beside the two whole-review log-odds:
the mean, the min and max, the last sentence. Each blend is fitted as the default's is (validation,
its cuts, both texts of the pairs of validation reviews counted 10 times) and measured on
validation, its cuts and the held-out fifth of the human training pairs. The test split and the
dev pairs are never read.

  PYTHONPATH=src python docs/lab/experiments/sentence_reader.py RUN DATA CAD
"""

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from imdb_sentiment import cli, counterfactuals, data, text
from imdb_sentiment.evaluate import pair_accuracy
from imdb_sentiment.features import predict_features
from imdb_sentiment.model import part_logits
from imdb_sentiment.runs import load_artifacts
from imdb_sentiment.short import CUTS, as_text, cut_texts, sentences


def main(run: str, source: str, cad: str) -> None:
    cli.load_tensorflow()
    art = load_artifacts(Path(run))
    splits = data.load(source, art.cfg)
    pairs = counterfactuals.load(Path(cad), splits, art.cfg)
    parts = part_logits(art.model)

    def logits(texts):
        return predict_features(parts, art.vectorizer.features(text.tokenize_corpus(texts)))

    def columns(texts):
        """[whole LSTM, whole bag, sentence LSTM mean, min, max, last, sentence bag mean]."""
        whole = logits(texts)
        split = [sentences(row) for row in text.token_lists(text.tokenize_corpus(texts))]
        split = [s or [[]] for s in split]
        counts = np.array([len(s) for s in split])
        owner = np.repeat(np.arange(len(split)), counts)
        each = logits([as_text(s) for review in split for s in review])
        lstm = each[:, 0]
        mean = np.bincount(owner, lstm) / counts
        bag_mean = np.bincount(owner, each[:, 1]) / counts
        lo = np.full(len(split), np.inf)
        hi = np.full(len(split), -np.inf)
        np.minimum.at(lo, owner, lstm)
        np.maximum.at(hi, owner, lstm)
        last = lstm[np.cumsum(counts) - 1]
        return np.column_stack([whole, mean, lo, hi, last, bag_mean])

    y_val = splits.val.label.to_numpy()
    val = columns(list(splits.val.review))
    cuts = columns(cut_texts(splits.val.review))
    held_texts, held_y = pairs.held_out.rows()
    pair_texts, pair_y = pairs.val.rows()
    held, on_val = columns(held_texts), columns(pair_texts)
    base_x, base_y = np.concatenate([val, cuts]), np.tile(y_val, 1 + len(CUTS))
    x = np.concatenate([base_x, *[on_val] * 10])
    y = np.concatenate([base_y, *[pair_y] * 10])
    names = ["lstm", "bag", "sent_mean", "sent_min", "sent_max", "sent_last", "sent_bag_mean"]
    sets = {
        "whole (the default)": [0, 1],
        "+ sentence mean": [0, 1, 2],
        "+ sentence min, max": [0, 1, 3, 4],
        "+ sentence mean, min, max": [0, 1, 2, 3, 4],
        "+ last sentence": [0, 1, 5],
        "+ sentence mean, min, max, last": [0, 1, 2, 3, 4, 5],
        "+ sentence bag mean": [0, 1, 6],
        "+ sentence means (LSTM, bag)": [0, 1, 2, 6],
        "+ all sentence columns": [0, 1, 2, 3, 4, 5, 6],
        "sentences only (LSTM)": [2, 3, 4, 5],
    }
    for name, cols in sets.items():
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(x[:, cols], y)
        right = clf.predict(base_x[:, cols]) == base_y
        by_cut = right.reshape(1 + len(CUTS), len(y_val)).mean(axis=1)
        r = clf.predict(held[:, cols]) == held_y
        print(
            json.dumps(
                {
                    "blend": name,
                    "weights": dict(zip([names[c] for c in cols], np.round(clf.coef_[0], 3))),
                    "val": round(100 * by_cut[0], 2),
                    "cuts": [round(100 * a, 1) for a in by_cut[1:]],
                    "held_out": [round(100 * a, 1) for a in pair_accuracy(r).values()],
                },
                default=float,
            ),
            flush=True,
        )
    for label, c in [("whole", 0), ("sentence mean", 2), ("last sentence", 5)]:
        held_out = pair_accuracy((held[:, c] >= 0) == (held_y == 1)).values()
        v = (val[:, c] >= 0) == (y_val == 1)
        print(
            f"LSTM alone, {label}: val {100 * v.mean():.2f}; held-out "
            + " / ".join(f"{100 * a:.1f}" for a in held_out)
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
