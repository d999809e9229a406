"""Sixteenth round of docs/lab/experiments.md: would a third part, NB-weighted logistic
regression over character n-grams, add to the blend of the LSTM and the word bag?

The character part (binary 2-5 character n-grams within words, weighted by bag.py's log-count
ratios, rows of unit length, liblinear with C 1, 3, 10) is fitted on the training reviews alone,
with scikit-learn, outside the model: this asks whether such a part is worth building in the
graph at all.
The run's own parts are read from the probe cache of unlabelled_bag.py (OUT/logits.npz). Each
blend is a logistic regression over the parts' log-odds, scored out of 10 folds of the whole
validation reviews. Validation only; the test split is never read.

  PYTHONPATH=src python docs/lab/experiments/char_bag.py RUN_DIR DATA LOGITS_NPZ
"""

import sys
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.preprocessing import normalize

from imdb_sentiment import data
from imdb_sentiment.bag import log_count_ratios
from imdb_sentiment.runs import load_artifacts


def nb_logits(x_train, y_train, x_val, c: float) -> np.ndarray:
    r = log_count_ratios(x_train, y_train, alpha=1.0)
    fit = LogisticRegression(C=c, solver="liblinear", max_iter=2000)
    fit.fit(normalize(x_train.multiply(r).tocsr()), y_train)
    return fit.decision_function(normalize(x_val.multiply(r).tocsr()))


def main(run: str, source: str, cache: str) -> None:
    splits = data.load(source, load_artifacts(Path(run)).cfg)
    y_train, y_val = splits.train.label.to_numpy(), splits.val.label.to_numpy()
    chars = CountVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), min_df=3, binary=True, dtype=np.float32
    )
    x_train, x_val = chars.fit_transform(splits.train.review), chars.transform(splits.val.review)
    by_c = {c: nb_logits(x_train, y_train, x_val, c) for c in (1.0, 3.0, 10.0)}
    accuracy = {c: ((z > 0) == y_val).mean() for c, z in by_c.items()}
    for c, acc in accuracy.items():
        print(f"char part, C={c:g}: validation {100 * acc:.2f}", flush=True)
    char = by_c[max(accuracy, key=accuracy.get)]
    lstm, bag = np.load(cache)["val"].T[:2]
    folds = StratifiedKFold(10, shuffle=True, random_state=0)

    def blend(*parts: np.ndarray) -> str:
        x = np.stack(parts, axis=1)
        z = cross_val_predict(
            LogisticRegression(C=1.0), x, y_val, cv=folds, method="decision_function"
        )
        return f"{100 * ((z > 0) == y_val).mean():.2f}"

    print(f"10-fold blends: LSTM + bag {blend(lstm, bag)}, with chars {blend(lstm, bag, char)}")
    r = np.corrcoef([lstm, bag, char])
    print(f"correlations with chars: bag {r[1, 2]:.3f}, LSTM {r[0, 2]:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
