"""Minimal pairs (issue 40), the blend's side: should the blend also be fitted on the human pairs
whose original is a validation review?

Those pairs (153 with the default seed, counterfactuals.Counterfactuals.val) are left out of
training, as the validation reviews are: neither part has seen them, so they are validation rows
like the reviews and their cuts. For one
run folder, the blend is fitted again on validation and its cuts, with and without both texts of
those pairs (each pair's rows weighted `weight` times). Prints validation, each cut and the
held-out fifth of the human training pairs (originals / edits / both) for each blend. Validation
and held-out pairs only: the test split and the dev pairs are never read.

  PYTHONPATH=src python docs/lab/experiments/blend_on_validation_pairs.py RUN DATA CAD [WEIGHT]
"""

import json
import sys
from pathlib import Path

import numpy as np

from imdb_sentiment import cli, counterfactuals, data, text
from imdb_sentiment.bag import fit_blend
from imdb_sentiment.evaluate import pair_accuracy
from imdb_sentiment.features import predict_features
from imdb_sentiment.model import part_logits
from imdb_sentiment.runs import load_artifacts
from imdb_sentiment.short import CUTS, cut_texts


def main(run: str, source: str, cad: str, *weights: str) -> None:
    cli.load_tensorflow()
    art = load_artifacts(Path(run))
    splits = data.load(source, art.cfg)
    pairs = counterfactuals.load(Path(cad), splits, art.cfg)
    held, on_val = pairs.held_out, pairs.val
    parts = part_logits(art.model)

    def logits(texts):
        return predict_features(parts, art.vectorizer.features(text.tokenize_corpus(texts)))

    y_val = splits.val.label.to_numpy()
    val, cuts = logits(list(splits.val.review)), logits(cut_texts(splits.val.review))
    held_texts, held_y = held.rows()
    pair_texts, pair_y = on_val.rows()
    held_logits, pair_logits = logits(held_texts), logits(pair_texts)
    base_x = np.concatenate([val, cuts])
    base_y = np.tile(y_val, 1 + len(CUTS))
    print(f"validation pairs: {len(on_val)}; held-out pairs: {len(held)}")
    for weight in [0.0, *map(float, weights or ["1", "5"])]:
        x = np.concatenate([base_x, *[pair_logits] * int(weight)]) if weight else base_x
        y = np.concatenate([base_y, *[pair_y] * int(weight)]) if weight else base_y
        w, b = fit_blend(x[:, 0], x[:, 1], y)
        right = ((base_x @ w + b) >= 0) == (base_y == 1)
        by_cut = right.reshape(1 + len(CUTS), len(y_val)).mean(axis=1)
        r = ((held_logits @ w + b) >= 0) == (held_y == 1)
        print(
            json.dumps(
                {
                    "pair_weight": weight,
                    "blend": {"lstm": round(float(w[0]), 3), "bag": round(float(w[1]), 3)},
                    "val": round(100 * by_cut[0], 2),
                    "cuts": [round(100 * a, 1) for a in by_cut[1:]],
                    "held_out": [round(100 * a, 1) for a in pair_accuracy(r).values()],
                }
            )
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
