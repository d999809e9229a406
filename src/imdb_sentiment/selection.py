"""Model selection on the validation split, shared by the TF-IDF baseline and the n-gram bag."""

from __future__ import annotations

import logging

from sklearn.linear_model import LogisticRegression

from .progress import bar

log = logging.getLogger(__name__)


def fit_on_validation(x_train, y_train, x_val, y_val, grid, name: str, **params):
    """One LogisticRegression(C=c, **params) per c in grid; returns (validation accuracy, C, model)
    of the best on validation (the first of equals)."""
    best = None
    for c in bar(grid, desc=f"{name}: fitting each C", unit="fit"):
        clf = LogisticRegression(C=c, **params).fit(x_train, y_train)
        acc = clf.score(x_val, y_val)
        log.info(f"{name}: C={c:g} validation accuracy {acc:.4f}")
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    return best
