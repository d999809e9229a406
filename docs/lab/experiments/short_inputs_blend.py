"""Sixth round of docs/lab/experiments.md: can the blend beat the TF-IDF baseline on short inputs?

For one trained run folder (its LSTM, vocabulary and config), it refits the n-gram bag with binary
and with unit-length (L2-normalized) rows, then fits blends of the two parts' log-odds: plain
(LSTM, bag) or length-aware (also each part times 1/sqrt(tokens), and 1/sqrt(tokens)), on whole
validation reviews, on whole reviews and their cuts, or on both with whole reviews weighing five
times their cuts (eighth round). Every accuracy is cross-fitted: two folds
over the validation reviews, a review's cuts in its own fold. Validation only; the test split is
never read.

  PYTHONPATH=src python docs/lab/experiments/short_inputs_blend.py RUN_DIR DATA
writes RUN_DIR/short_inputs_blend.json and prints one line per variant.
"""

import dataclasses
import json
import sys

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from imdb_sentiment import bag, cli, data, short, text
from imdb_sentiment.baseline import fit_tfidf
from imdb_sentiment.features import predict_features
from imdb_sentiment.model import part_logits
from imdb_sentiment.runs import load_artifacts
from imdb_sentiment.selection import fit_on_validation

BAGS = {"binary": (False, (0.1, 0.3, 1.0)), "l2": (True, (1.0, 3.0, 10.0, 30.0))}


def design(rows: dict, bag_name: str, kind: str) -> np.ndarray:
    lstm, bag_logit = rows["lstm"], rows["bag"][bag_name]
    if kind == "plain":
        return np.stack([lstm, bag_logit], 1)
    g = 1 / np.sqrt(rows["tokens"])
    return np.stack([lstm, bag_logit, lstm * g, bag_logit * g, g], 1)


def main(run: str, source: str) -> None:
    cli.load_tensorflow()
    art = load_artifacts(run)
    cfg, vec = art.cfg, art.vectorizer
    splits = data.load(source, cfg)
    y_train, y_val = splits.train.label.to_numpy(), splits.val.label.to_numpy()
    x_train = bag.binary_matrix(
        vec.features(text.tokenize_corpus(splits.train.review.tolist()))["ngram_ids"],
        cfg.ngram_buckets,
    )
    val_tokens = text.tokenize_corpus(splits.val.review.tolist())
    x_val = bag.binary_matrix(vec.features(val_tokens)["ngram_ids"], cfg.ngram_buckets)
    scale = sp.diags(bag.log_count_ratios(x_train, y_train, cfg.ngram_alpha))
    bags = {}
    for name, (normalize, grid) in BAGS.items():
        c = dataclasses.replace(cfg, ngram_normalize=normalize)
        _, _, bags[name] = fit_on_validation(
            bag.features(x_train, c) @ scale,
            y_train,
            bag.features(x_val, c) @ scale,
            y_val,
            grid,
            f"bag ({name})",
            solver="liblinear",
            max_iter=1000,
            random_state=cfg.seed,
        )
    tfidf = fit_tfidf(splits)
    parts = part_logits(art.model)
    tokens = [[t.decode() for t in row] for row in val_tokens.to_list()]
    texts = {"whole": [short.as_text(t) for t in tokens]}
    texts.update({name: [short.as_text(short.cut(t, name)) for t in tokens] for name in short.CUTS})
    rows = {}
    for name, batch in texts.items():
        toks = text.tokenize_corpus(batch)
        feats = vec.features(toks)
        x = bag.binary_matrix(feats["ngram_ids"], cfg.ngram_buckets)
        rows[name] = {
            "lstm": predict_features(parts, feats)[:, 0],
            "tokens": np.maximum(toks.row_lengths().numpy(), 1),
            "bag": {
                k: clf.decision_function(
                    bag.features(x, dataclasses.replace(cfg, ngram_normalize=BAGS[k][0])) @ scale
                )
                for k, clf in bags.items()
            },
            "baseline": tfidf.predict_proba([short.for_baseline(t) for t in batch])[:, 1] >= 0.5,
        }
    fold = np.random.default_rng(0).permutation(len(y_val)) % 2
    out = {}
    for bag_name in BAGS:
        for kind in ("plain", "length"):
            # whole x5: the whole reviews weigh five times their cuts in the fit
            for fit_on in ("whole", "whole+cuts", "whole x5+cuts"):
                names = ["whole"] if fit_on == "whole" else list(texts)
                whole_weight = 5.0 if fit_on.startswith("whole x5") else 1.0
                right = {k: np.zeros(len(y_val), bool) for k in texts}
                for f in (0, 1):
                    x = np.concatenate([design(rows[k], bag_name, kind)[fold != f] for k in names])
                    n = int((fold != f).sum())
                    weight = np.concatenate(
                        [np.full(n, whole_weight if k == "whole" else 1.0) for k in names]
                    )
                    blend = LogisticRegression(max_iter=1000).fit(
                        x, np.concatenate([y_val[fold != f]] * len(names)), sample_weight=weight
                    )
                    for k in texts:
                        predicted = blend.predict(design(rows[k], bag_name, kind)[fold == f])
                        right[k][fold == f] = predicted == y_val[fold == f]
                out[f"{bag_name}/{kind}/{fit_on}"] = {k: float(v.mean()) for k, v in right.items()}
    for k, r in rows.items():
        out.setdefault("baseline", {})[k] = float((r["baseline"] == y_val).mean())
        out.setdefault("lstm", {})[k] = float(((r["lstm"] >= 0) == y_val).mean())
        for b in BAGS:
            out.setdefault(f"bag ({b})", {})[k] = float(((r["bag"][b] >= 0) == y_val).mean())
    for name, accuracy in out.items():
        print(name, " ".join(f"{k} {v:.4f}" for k, v in accuracy.items()))
    with open(f"{run}/short_inputs_blend.json", "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:3])
