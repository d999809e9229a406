"""Model selection on the validation split, shared by the TF-IDF baseline and the n-gram bag."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, as_completed

from sklearn.linear_model import LogisticRegression

from .progress import bar

log = logging.getLogger(__name__)


def fit_on_validation(x_train, y_train, x_val, y_val, grid, name: str, workers: int = 1, **params):
    """One LogisticRegression(C=c, **params) per c in grid; returns (validation accuracy, C, model)
    of the best on validation (the first of equals).

    workers > 1 fits that many at once, in threads, each on its own core for solvers that leave
    Python while they fit (liblinear does). The choice is the same; on large problems a fit may
    end elsewhere within the solver's tolerance, as BLAS splits its sums by the threads it gets
    (docs/results.md, training time)."""

    def fitted(c):
        clf = LogisticRegression(C=c, **params).fit(x_train, y_train)
        return clf, clf.score(x_val, y_val)

    with ThreadPoolExecutor(max(1, min(workers, len(grid)))) as pool:
        futures = [pool.submit(fitted, c) for c in grid]
        for _ in bar(
            as_completed(futures), total=len(grid), desc=f"{name}: fitting each C", unit="fit"
        ):
            pass
    best = None
    for c, future in zip(grid, futures):
        clf, acc = future.result()
        log.info(f"{name}: C={c:g} validation accuracy {acc:.4f}")
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    return best
