"""Thirteenth round of docs/experiments.md: the bag refitted on the training reviews and on the
unlabelled reviews, labelled by a trained model.

For one run folder whose bag was fitted on the training reviews alone, its parts' log-odds label
the unlabelled reviews found beside the data; the bag is fitted again (same features, ratios and C
grid) on the training reviews and those rows, and the blend fitted again on validation and its
cuts, as train.py fits them. Prints, for each labelling, the bag alone and the blend on validation
(in-sample, as train.py reports it) and the blend at each cut beside the TF-IDF baseline recorded in
the run's metrics.json. Validation only; the test split is never read. The parts' log-odds are
kept in OUT/logits.npz, so a second call skips the model's pass (about 3 minutes).

  PYTHONPATH=src python docs/experiments/unlabelled_bag.py RUN_DIR DATA OUT [LABELLING ...]
"""

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from imdb_sentiment import cli, data, text
from imdb_sentiment.bag import binary_matrix, fit_bag, fit_blend
from imdb_sentiment.features import predict_features
from imdb_sentiment.model import part_logits
from imdb_sentiment.runs import load_artifacts
from imdb_sentiment.short import CUTS, cut_texts


def main(run: str, source: str, out: str, *chosen: str) -> None:
    cli.load_tensorflow()
    run, out = Path(run), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    art = load_artifacts(run)
    cfg, vec = art.cfg, art.vectorizer
    metrics = json.loads((run / "metrics.json").read_text())
    splits = data.load(source, cfg)
    unlabelled = data.read_unlabelled(data.find_unlabelled(source))
    x = {
        name: vec.features(text.tokenize_corpus(list(reviews)))
        for name, reviews in (
            ("train", splits.train.review),
            ("val", splits.val.review),
            ("cuts", cut_texts(splits.val.review)),
            ("unlabelled", unlabelled),
        )
    }
    cache = out / "logits.npz"
    if not cache.exists():
        parts = part_logits(art.model)
        np.savez(cache, **{k: predict_features(parts, x[k]) for k in ("val", "cuts", "unlabelled")})
    logits = dict(np.load(cache))
    y_train, y_val = splits.train.label.to_numpy(), splits.val.label.to_numpy()
    baseline = {k: metrics["short_inputs"][k]["baseline"] for k in CUTS}

    def report(name: str, bag_val: np.ndarray, bag_cuts: np.ndarray) -> None:
        lstm = np.concatenate([logits["val"][:, 0], logits["cuts"][:, 0]])
        bag, y = np.concatenate([bag_val, bag_cuts]), np.tile(y_val, 1 + len(CUTS))
        w, b = fit_blend(lstm, bag, y)
        right = (w[0] * lstm + w[1] * bag + b >= 0) == y
        by_cut = right.reshape(1 + len(CUTS), len(y_val)).mean(axis=1)  # whole reviews, then CUTS
        cuts = ", ".join(
            f"{k} {100 * a:.2f}/{100 * baseline[k]:.2f}" for k, a in zip(CUTS, by_cut[1:])
        )
        bag_alone = 100 * ((bag_val >= 0) == y_val).mean()
        print(
            f"{name}: bag {bag_alone:.2f}, blend {100 * by_cut[0]:.2f} "
            f"({w[0]:.3f} LSTM + {w[1]:.3f} bag {b:+.3f}); blend/baseline at the cuts: {cuts}",
            flush=True,
        )

    report("as trained", logits["val"][:, 1], logits["cuts"][:, 1])
    parts = metrics["parts"]["blend"]
    blend = parts["lstm"] * logits["unlabelled"][:, 0] + parts["bag"] * logits["unlabelled"][:, 1]
    blend += parts["bias"]
    labellings = {  # log-odds labelling the unlabelled reviews, share of them kept (most sure)
        "blend_all": (blend, 1.0),
        "blend_half": (blend, 0.5),
        "bag_all": (logits["unlabelled"][:, 1], 1.0),
        "lstm_all": (logits["unlabelled"][:, 0], 1.0),
    }
    val_rows, cut_rows = (
        binary_matrix(x[k]["ngram_ids"], cfg.ngram_buckets) for k in ("val", "cuts")
    )
    for name in chosen or labellings:
        log_odds, share = labellings[name]
        keep = np.abs(log_odds) >= np.quantile(np.abs(log_odds), 1 - share)
        fitted = fit_bag(
            tf.concat(
                [
                    x["train"]["ngram_ids"],
                    tf.ragged.boolean_mask(x["unlabelled"]["ngram_ids"], keep),
                ],
                axis=0,
            ),
            np.concatenate([y_train, (log_odds[keep] >= 0).astype(y_train.dtype)]),
            x["val"]["ngram_ids"],
            y_val,
            cfg,
        )
        weights, bias = fitted["weights"], fitted["bias"]
        report(
            f"{name} ({keep.sum()} unlabelled rows, C={fitted['C']:g})",
            val_rows @ weights + bias,
            cut_rows @ weights + bias,
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
