"""The strongest simple baseline: TF-IDF word 1-2-grams + logistic regression (scikit-learn).

Same training rows, regularisation chosen on the same validation rows, same metrics on the same
test rows as the LSTM, so the two can be compared side by side.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline, make_pipeline

from .data import strip_html
from .evaluate import evaluate
from .results import Baseline, SplitScores
from .selection import fit_on_validation

C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)


def fit_tfidf(splits) -> Pipeline:
    """The baseline fitted on the training reviews, C chosen on validation: raw reviews in,
    predict_proba out."""
    # The notebooks' reading: markup removed by BeautifulSoup, then scikit-learn's own tokenizer.
    vec = TfidfVectorizer(
        ngram_range=(1, 2),
        min_df=2,
        sublinear_tf=True,
        dtype=np.float32,
        preprocessor=lambda review: strip_html(review).lower(),
    )
    x_train = vec.fit_transform(splits.train.review)
    x_val = vec.transform(splits.val.review)
    _, _, clf = fit_on_validation(
        x_train, splits.train.label, x_val, splits.val.label, C_GRID, "baseline", max_iter=2000
    )
    return make_pipeline(vec, clf)


def fit_baseline(
    splits, with_test: bool = True, model: Pipeline | None = None
) -> tuple[Baseline, dict[str, np.ndarray]]:
    """Metrics of fit_tfidf's model, or of `model` when it was fitted already (`seconds` then
    counts the scoring only), and P(positive) of each split's reviews, in order (for pairing with
    the model's on the same reviews)."""
    t0 = time.perf_counter()
    model = fit_tfidf(splits) if model is None else model
    # The test rows are read once, with C already fixed.
    probabilities = {
        name: model.predict_proba(getattr(splits, name).review)[:, 1]
        for name in (("val", "test") if with_test else ("val",))
    }
    scores: dict[str, SplitScores] = {
        name: evaluate(getattr(splits, name).label, p) for name, p in probabilities.items()
    }
    return Baseline(C=model[-1].C, **scores, seconds=time.perf_counter() - t0), probabilities
