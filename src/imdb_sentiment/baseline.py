"""The strongest simple baseline: TF-IDF word 1-2-grams + logistic regression (scikit-learn).

Same training rows, regularisation chosen on the same validation rows, same metrics on the same
test rows as the LSTM, so the two can be compared side by side.
"""
from __future__ import annotations

import time

import numpy as np

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from .evaluate import evaluate

C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)


def fit_baseline(splits, log=print, with_test: bool = True) -> dict:
    t0 = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, dtype=np.float32)
    x_train = vec.fit_transform(splits.train.review)
    x_val = vec.transform(splits.val.review)
    best = None
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=2000).fit(x_train, splits.train.label)
        acc = clf.score(x_val, splits.val.label)
        log(f"baseline: C={c:g} validation accuracy {acc:.4f}")
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    _, c, clf = best
    model = make_pipeline(vec, clf)
    result = {"C": c, "val": evaluate(splits.val.label, model.predict_proba(splits.val.review)[:, 1])}
    if with_test:  # read once, with C already fixed
        result["test"] = evaluate(splits.test.label, model.predict_proba(splits.test.review)[:, 1])
    result["seconds"] = time.perf_counter() - t0
    return result
