"""Minimal pairs (issue 40), the bag's side: which minimal pairs should the bag fit?

For one run folder, its LSTM part labels the unlabelled reviews (as train.py does); the bag is
fitted again on the training reviews, those rows and each variant's pair rows (train.pair_rows
with the variant's config keys), and the blend fitted again on validation and its cuts. Prints,
for each variant, the bag alone and the blend on validation, the blend at each cut, and the
held-out fifth of the human training pairs (originals/edits/both) for the blend, the bag and the
LSTM. With each, a second blend is fitted on the same rows and on made-up pairs of the
validation reviews (augment.made_up_pairs of validation, not training, reviews: rows neither part
trained on), to see whether the blend then trusts the part that reads edits. Validation and
held-out pairs only: the test split and the dev pairs are never read.

  PYTHONPATH=src python docs/lab/experiments/pair_rows_bag.py RUN_DIR DATA CAD OUT [VARIANT ...]

A variant is a name with config keys: `human:made_up_negations=0,made_up_antonyms=0`.
"""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from imdb_sentiment import cli, counterfactuals, data, text
from imdb_sentiment.augment import HUMAN, PairRows, made_up_pairs
from imdb_sentiment.bag import binary_matrix, fit_bag, fit_blend
from imdb_sentiment.evaluate import pair_accuracy
from imdb_sentiment.features import predict_features
from imdb_sentiment.model import part_logits
from imdb_sentiment.runs import load_artifacts
from imdb_sentiment.short import CUTS, cut_texts
from imdb_sentiment.train import Corpus, input_vectors, pair_rows

VARIANTS = {
    "none": "counterfactual_repeats=0,made_up_negations=0,made_up_antonyms=0",
    "human": "made_up_negations=0,made_up_antonyms=0",
    "human_negations": "made_up_antonyms=0",
    "as_trained": "",
}


def main(run: str, source: str, cad: str, out: str, *chosen: str) -> None:
    cli.load_tensorflow()
    run, out = Path(run), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    art = load_artifacts(run)
    cfg, vec = art.cfg, art.vectorizer
    splits = data.load(source, cfg)
    pairs = counterfactuals.load(Path(cad), splits, cfg)
    unlabelled = data.without_texts_of(
        data.read_unlabelled(data.find_unlabelled(source)), splits.val.review, splits.test.review
    )
    held_texts, held_y = pairs.held_out.rows()
    texts = {
        "val": list(splits.val.review),
        "cuts": cut_texts(splits.val.review),
        "unlabelled": unlabelled,
        "held": held_texts,
    }
    tokens = text.tokenize_corpus(list(splits.train.review))
    train_x = vec.features(tokens)
    y_train, y_val = splits.train.label.to_numpy(), splits.val.label.to_numpy()
    matrix, _ = input_vectors(vec.vocabulary, cfg, train_x["token_ids"], y_train)
    made, _ = made_up_pairs(
        text.token_lists(text.tokenize_corpus(texts["val"])), y_val, vec.vocabulary,
        matrix[:, : cfg.glove_dim], matrix[:, -1], cfg,
    )  # fmt: skip
    val_made = PairRows.of(made, vec, y_val.dtype)
    feats = {k: vec.features(text.tokenize_corpus(t)) for k, t in texts.items()}
    feats["val_made"] = val_made.features
    corpus = Corpus(vec, tokens, train_x, feats["val"], y_train, y_val)
    cache = out / "logits.npz"
    if cache.exists() and "val_made" not in np.load(cache):
        parts = part_logits(art.model)
        np.savez(cache, **dict(np.load(cache)), val_made=predict_features(parts, feats["val_made"]))
    if not cache.exists():
        parts = part_logits(art.model)
        np.savez(cache, **{k: predict_features(parts, f) for k, f in feats.items()})
    logits = dict(np.load(cache))
    lstm_labels = (logits["unlabelled"][:, 0] >= 0).astype(np.int64)
    y_blend = np.tile(y_val, 1 + len(CUTS))
    lstm_blend = np.concatenate([logits["val"][:, 0], logits["cuts"][:, 0]])
    results = {}
    for variant in chosen or VARIANTS:
        name, _, keys = variant.partition(":")
        keys = keys or VARIANTS.get(name, "")
        vcfg = dataclasses.replace(
            cfg,
            ngram_c_grid=(0.03, 0.1, 0.3),
            **{k: int(v) for k, v in (kv.split("=") for kv in keys.split(",") if kv)},
        )
        # Every pair row of the variant, the human pairs' counterfactual_repeats times, as the
        # recorded round fitted them (antonym reviews too, whatever antonyms_in_bag says).
        bag_pairs, _ = pair_rows(vcfg, pairs, corpus, matrix)
        bag_pairs = bag_pairs.repeated(HUMAN, vcfg.counterfactual_repeats)
        bag_x = [train_x, bag_pairs.features, feats["unlabelled"]]
        bag_ids = tf.concat([x["ngram_ids"] for x in bag_x], axis=0)
        bag_y = np.concatenate([y_train, bag_pairs.labels, lstm_labels])
        fitted = fit_bag(bag_ids, bag_y, feats["val"]["ngram_ids"], y_val, vcfg)
        bag = {
            k: binary_matrix(feats[k]["ngram_ids"], cfg.ngram_buckets) @ fitted["weights"]
            + fitted["bias"]
            for k in ("val", "cuts", "held", "val_made")
        }
        w, b = fit_blend(lstm_blend, np.concatenate([bag["val"], bag["cuts"]]), y_blend)
        blend = {k: w[0] * logits[k][:, 0] + w[1] * bag[k] + b for k in ("val", "cuts", "held")}
        right_blend = (np.concatenate([blend["val"], blend["cuts"]]) >= 0) == (y_blend == 1)
        by_cut = right_blend.reshape(1 + len(CUTS), len(y_val)).mean(axis=1)

        def on_pairs(log_odds):
            right = (log_odds >= 0) == (held_y == 1)
            return [round(100 * a, 1) for a in pair_accuracy(right).values()]

        lstm_made = np.concatenate([lstm_blend, logits["val_made"][:, 0]])
        bag_made = np.concatenate([bag["val"], bag["cuts"], bag["val_made"]])
        w2, b2 = fit_blend(lstm_made, bag_made, np.concatenate([y_blend, val_made.labels]))
        blend2 = {k: w2[0] * logits[k][:, 0] + w2[1] * bag[k] + b2 for k in ("val", "cuts", "held")}
        right2 = (np.concatenate([blend2["val"], blend2["cuts"]]) >= 0) == (y_blend == 1)
        by_cut2 = right2.reshape(1 + len(CUTS), len(y_val)).mean(axis=1)
        results[name] = {
            "keys": keys,
            "pair_rows": len(bag_pairs),
            "C": fitted["C"],
            "bag_val": round(100 * fitted["val_accuracy"], 2),
            "blend": {"lstm": float(w[0]), "bag": float(w[1]), "bias": b},
            "blend_val": round(100 * float(by_cut[0]), 2),
            "blend_cuts": {k: round(100 * float(a), 2) for k, a in zip(CUTS, by_cut[1:])},
            "held_out_pairs": {
                "blend": on_pairs(blend["held"]),
                "bag": on_pairs(bag["held"]),
                "lstm": on_pairs(logits["held"][:, 0]),
            },
            "with_validation_pairs": {
                "made_up_rows": len(val_made),
                "blend": {"lstm": float(w2[0]), "bag": float(w2[1]), "bias": b2},
                "blend_val": round(100 * float(by_cut2[0]), 2),
                "blend_cuts": {k: round(100 * float(a), 2) for k, a in zip(CUTS, by_cut2[1:])},
                "held_out_pairs": on_pairs(blend2["held"]),
            },
        }
        print(name, json.dumps(results[name]), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
