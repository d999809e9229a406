"""Thirteenth and fourteenth rounds of docs/lab/experiments.md: the bag refitted on the training
reviews and on the unlabelled reviews, labelled by a trained model, with the run's n-gram features
or others.

For one run folder, its parts' log-odds label the unlabelled reviews found beside the data (less
those with the text of a validation or test review, as train.py leaves them out); the bag is
fitted again (same ratios and C grid) on the training reviews and those rows, and the blend fitted
again on validation and its cuts, as train.py fits them. A variant is a labelling, optionally with
config keys of the bag's features: `lstm_all:ngram_order=3,ngram_buckets=8388608`. Prints, for
each, the bag alone and the blend on validation (in-sample, as train.py reports it) and the blend
at each cut beside the TF-IDF baseline recorded in the run's metrics.json. Validation only; the
test split is never read. The parts' log-odds are kept in OUT/logits.npz, so a second call skips
the model's pass (about 3 minutes).

  PYTHONPATH=src python docs/lab/experiments/unlabelled_bag.py RUN_DIR DATA OUT [VARIANT ...]
"""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from sklearn.linear_model import LogisticRegression

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
    metrics = json.loads((run / "metrics.json").read_text())
    splits = data.load(source, art.cfg)
    unlabelled = data.without_texts_of(
        data.read_unlabelled(data.find_unlabelled(source)), splits.val.review, splits.test.review
    )
    tokens = {
        name: text.tokenize_corpus(list(reviews))
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
        np.savez(
            cache,
            **{
                k: predict_features(parts, art.vectorizer.features(tokens[k]))
                for k in ("val", "cuts", "unlabelled")
            },
        )
    logits = dict(np.load(cache))
    y_train, y_val = splits.train.label.to_numpy(), splits.val.label.to_numpy()
    baseline = {k: metrics["short_inputs"][k]["baseline"] for k in CUTS}

    # tokens each review is read with (after truncation), whole reviews then each cut
    lengths = np.concatenate(
        [
            art.vectorizer.features(tokens[k])["token_ids"].row_lengths().numpy()
            for k in ("val", "cuts")
        ]
    )
    y = np.tile(y_val, 1 + len(CUTS))
    fold = np.tile(np.arange(len(y_val)) % 10, 1 + len(CUTS))  # a review and its cuts together

    def blend_right(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row right or wrong under the blend fitted on all rows, and out of 10 folds."""
        fit = LogisticRegression(C=1.0).fit(x, y)
        held = np.empty(len(y), bool)
        for k in range(10):
            out = fold == k
            held[out] = LogisticRegression(C=1.0).fit(x[~out], y[~out]).predict(x[out]) == y[out]
        return fit.predict(x) == y, held

    def report(name: str, bag_val: np.ndarray, bag_cuts: np.ndarray) -> None:
        lstm = np.concatenate([logits["val"][:, 0], logits["cuts"][:, 0]])
        bag = np.concatenate([bag_val, bag_cuts])
        w, b = fit_blend(lstm, bag, y)
        bag_alone = 100 * ((bag_val >= 0) == y_val).mean()
        print(
            f"{name}: bag {bag_alone:.2f}, blend {w[0]:.3f} LSTM + {w[1]:.3f} bag {b:+.3f}",
            flush=True,
        )
        g = np.log(lengths)
        for kind, x in (
            ("blend", np.stack([lstm, bag], axis=1)),
            ("by length", np.stack([lstm, bag, g * lstm, g * bag, g], axis=1)),
        ):
            right, held = blend_right(x)
            by_cut = right.reshape(1 + len(CUTS), len(y_val)).mean(axis=1)  # whole, then CUTS
            cuts = ", ".join(
                f"{k} {100 * a:.2f}/{100 * baseline[k]:.2f}" for k, a in zip(CUTS, by_cut[1:])
            )
            held_whole = 100 * held[: len(y_val)].mean()
            print(
                f"  {kind}: {100 * by_cut[0]:.2f} (10-fold {held_whole:.2f}); "
                f"blend/baseline at the cuts: {cuts}",
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
        "lstm_three_quarters": (logits["unlabelled"][:, 0], 0.75),
        "lstm_half": (logits["unlabelled"][:, 0], 0.5),
    }
    for variant in chosen or labellings:
        name, _, keys = variant.partition(":")
        cfg = dataclasses.replace(
            art.cfg, **{k: int(v) for k, v in (kv.split("=") for kv in keys.split(",") if kv)}
        )
        vec = text.Vectorizer.from_config(art.vectorizer.vocabulary, cfg)
        ids = {k: vec.features(t)["ngram_ids"] for k, t in tokens.items()}
        log_odds, share = labellings[name]
        keep = np.abs(log_odds) >= np.quantile(np.abs(log_odds), 1 - share)
        fitted = fit_bag(
            tf.concat([ids["train"], tf.ragged.boolean_mask(ids["unlabelled"], keep)], axis=0),
            np.concatenate([y_train, (log_odds[keep] >= 0).astype(y_train.dtype)]),
            ids["val"],
            y_val,
            cfg,
        )
        weights, bias = fitted["weights"], fitted["bias"]
        val_rows, cut_rows = (binary_matrix(ids[k], cfg.ngram_buckets) for k in ("val", "cuts"))
        report(
            f"{variant} ({keep.sum()} unlabelled rows, C={fitted['C']:g}, "
            f"{fitted['seconds']:.0f}s)",
            val_rows @ weights + bias,
            cut_rows @ weights + bias,
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
