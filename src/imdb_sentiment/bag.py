"""The wide part: NB-weighted logistic regression over a review's distinct hashed n-grams.

NBSVM (Wang & Manning, 2012) scales each binary n-gram feature by its Naive-Bayes log-count ratio
r = log(P(n-gram | positive) / P(n-gram | negative)) before a linear classifier. Fitted to
convergence with L2 (liblinear), it generalises to reviews of unseen movies better than TF-IDF
weighting. A bag trained by Adam inside the network did not: it fitted the training movies within
two epochs (docs/lab/experiments.md). The fitted weights (coefficient times r, one per hash
bucket) go into the network's frozen NgramBag layer, so serving computes the same log-odds from
raw text.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from sklearn.linear_model import LogisticRegression

from .selection import fit_on_validation
from .text import NO_NGRAM_ID

log = logging.getLogger(__name__)


def binary_matrix(ngram_ids: tf.RaggedTensor, buckets: int) -> sp.csr_matrix:
    """Rows of distinct n-gram ids (as the Vectorizer gives them) -> a 0/1 sparse matrix."""
    indices = ngram_ids.flat_values.numpy()
    m = sp.csr_matrix(
        (np.ones(len(indices), np.float32), indices, ngram_ids.row_splits.numpy()),
        shape=(int(ngram_ids.nrows()), buckets),
    )
    m.data[m.indices <= NO_NGRAM_ID] = 0  # padding and "no n-gram" carry no evidence
    m.eliminate_zeros()
    return m


def features(x: sp.csr_matrix, cfg) -> sp.csr_matrix:
    """The bag's inputs: binary rows, divided by their root count with cfg.ngram_normalize."""
    if not cfg.ngram_normalize:
        return x
    count = np.maximum(np.asarray(x.sum(axis=1)).ravel(), 1.0)
    return sp.diags(1.0 / np.sqrt(count)).astype(np.float32) @ x


def log_count_ratios(x: sp.csr_matrix, labels: np.ndarray, alpha: float) -> np.ndarray:
    """r per bucket, with add-alpha smoothing; buckets no training review has get r = 0."""
    y = np.asarray(labels) == 1
    pos = np.asarray(x[y].sum(axis=0)).ravel()
    neg = np.asarray(x[~y].sum(axis=0)).ravel()
    p, q = pos + alpha, neg + alpha
    r = np.log(p / p.sum()) - np.log(q / q.sum())
    r[pos + neg == 0] = 0.0
    return r.astype(np.float32)


def word_polarity(
    token_ids: tf.RaggedTensor, labels, rows: int, min_reviews: int, alpha: float, clip: float = 3.0
) -> np.ndarray:
    """Each token id's log-count ratio over the training reviews that hold it, one per row of the
    embedding matrix: a frozen input the LSTM reads beside GloVe, which tells praise from damnation
    less well. Words in fewer than min_reviews training reviews get 0: through their ratios the
    LSTM would read its training reviews' own labels (docs/lab/experiments.md, twelfth round)."""
    x = binary_matrix(token_ids, rows)
    x.sum_duplicates()  # a review's token ids repeat; the ratio counts reviews
    x.data[:] = 1.0
    r = np.clip(log_count_ratios(x, labels, alpha), -clip, clip)
    r[np.asarray(x.sum(axis=0)).ravel() < min_reviews] = 0.0
    return r


def fit_bag(
    train_ids: tf.RaggedTensor, train_labels, val_ids: tf.RaggedTensor, val_labels, cfg
) -> dict:
    """Chooses C on validation; returns the per-bucket weights, the bias and what was measured."""
    t0 = time.perf_counter()
    x_train = binary_matrix(train_ids, cfg.ngram_buckets)
    x_val = binary_matrix(val_ids, cfg.ngram_buckets)
    r = log_count_ratios(x_train, train_labels, cfg.ngram_alpha)
    scale = sp.diags(r)
    acc, c, clf = fit_on_validation(
        features(x_train, cfg) @ scale,
        train_labels,
        features(x_val, cfg) @ scale,
        val_labels,
        cfg.ngram_c_grid,
        "n-gram bag",
        workers=os.cpu_count() or 1,
        solver="liblinear",
        max_iter=1000,
        random_state=cfg.seed,
    )
    seconds = time.perf_counter() - t0
    log.info(
        f"n-gram bag: C={c:g} kept; {x_train.shape[0]} reviews, "
        f"{x_train.nnz / x_train.shape[0]:.0f} distinct "
        f"n-grams each, fitted in {seconds:.0f}s"
    )
    return {
        "weights": (clf.coef_[0] * r).astype(np.float32),
        "bias": float(clf.intercept_[0]),
        "C": c,
        "val_accuracy": float(acc),
        "seconds": seconds,
    }


def fit_blend(lstm_logits: np.ndarray, bag_logits: np.ndarray, labels) -> tuple[np.ndarray, float]:
    """Weights of the two parts' log-odds, fitted on validation rows that neither part trained on.

    Fitting them on training rows would trust the bag, which fits its training rows almost
    perfectly, and silence the LSTM.
    """
    clf = LogisticRegression(C=1.0).fit(np.stack([lstm_logits, bag_logits], axis=1), labels)
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])
