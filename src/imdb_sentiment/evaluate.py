"""Metrics on a labelled split (results.SplitScores), on minimal pairs, and as a printed table."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest
from sklearn import metrics as skm

from .results import EditScores, LineRead, MissedEdit, PairScores, SplitScores

log = logging.getLogger(__name__)


@dataclass
class SplitPredictions:
    """One evaluated split: the reviews, their labels, the model's P(positive), tokens per
    review."""

    reviews: list[str]
    labels: np.ndarray
    probabilities: np.ndarray
    lengths: np.ndarray


def evaluate(labels, probabilities, threshold: float = 0.5) -> SplitScores:
    y = np.asarray(labels, dtype=int)
    p = np.asarray(probabilities, dtype=np.float64)
    pred = (p >= threshold).astype(int)
    n = len(y)
    acc = float((pred == y).mean()) if n else float("nan")
    lo, hi = wilson_interval(acc, n)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return SplitScores(
        n=n,
        accuracy=acc,
        accuracy_95ci=[lo, hi],
        precision=float(skm.precision_score(y, pred, zero_division=0)),
        recall=float(skm.recall_score(y, pred, zero_division=0)),
        f1=float(skm.f1_score(y, pred, zero_division=0)),
        roc_auc=float(skm.roc_auc_score(y, p)) if len(set(y)) == 2 else float("nan"),
        ece=expected_calibration_error(y, p)[0] if n else float("nan"),
        confusion_matrix={"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        threshold=threshold,
    )


def evaluate_splits(
    model, vectorizer, splits, names=("val", "test")
) -> tuple[dict[str, SplitScores], dict[str, SplitPredictions]]:
    """Metrics and, for the report, the predictions of each named split (in that order).

    Each split's metrics also give each part's accuracy alone (its log-odds >= 0) in `parts`:
    reported, never chosen on."""
    # TensorFlow loads only when a model is evaluated: the baseline's command never needs it.
    from .features import predict_features
    from .model import scores_and_parts
    from .text import tokenize_corpus

    scorer, parts = scores_and_parts(model)
    results, predictions = {}, {}
    for name in names:
        df = getattr(splits, name)
        tokens = tokenize_corpus(df.review.tolist())
        scores = predict_features(scorer, vectorizer.features(tokens))
        p = scores[:, 0]
        results[name] = evaluate(df.label, p)
        y = df.label.to_numpy() == 1
        results[name].parts = {
            part: float(((scores[:, i] >= 0) == y).mean()) for i, part in enumerate(parts, 1)
        }
        log.info(
            f"{name}: each part alone, "
            + ", ".join(f"{k} {v:.4f}" for k, v in results[name].parts.items())
        )
        predictions[name] = SplitPredictions(
            df.review.tolist(), df.label.to_numpy(), p, tokens.row_lengths().numpy()
        )
    return results, predictions


def right_by_scorer(
    scores: np.ndarray, parts: list[str], labels, baseline=None
) -> dict[str, np.ndarray]:
    """Which rows each scorer gets right: the whole model ("blend": column 0 of `scores`,
    P(positive) as the exported model gives it), each part alone (the other columns, named by
    `parts`: log-odds >= 0), and the baseline (its P(positive) per row; left out when None)."""
    y = np.asarray(labels) == 1
    right = {"blend": (scores[:, 0] >= 0.5) == y}
    right.update({part: (scores[:, i] >= 0) == y for i, part in enumerate(parts, start=1)})
    if baseline is not None:
        right["baseline"] = (np.asarray(baseline) >= 0.5) == y
    return right


def pair_accuracy(right) -> PairScores:
    """The share right of originals, of edits and of both, from right answers on a set of
    pairs' rows as Pairs.rows() gives them (the originals, then their edits in the same order)."""
    n = len(right) // 2
    return PairScores(
        originals=float(right[:n].mean()),
        edits=float(right[n:].mean()),
        both=float((right[:n] & right[n:]).mean()),
    )


def edits(model, vectorizer, pairs, baseline=None) -> EditScores:
    """Accuracy on minimal pairs (counterfactuals.Pairs) of the whole model ("blend"), each of
    its parts alone (log-odds >= 0) and the baseline (a function of raw texts -> P(positive);
    left out when None). A model that
    recalls reviews it has seen gets originals right and their edits wrong; "both" is the share
    of pairs it reads."""
    from .features import predict_features
    from .model import scores_and_parts
    from .text import tokenize_corpus

    scorer, parts = scores_and_parts(model)
    texts, labels = pairs.rows()
    scores = predict_features(scorer, vectorizer.features(tokenize_corpus(texts)))
    right = right_by_scorer(scores, parts, labels, baseline(texts) if baseline else None)
    scored = {key: pair_accuracy(r) for key, r in right.items()}
    log.info(
        f"minimal pairs ({len(pairs)}), originals/edits/both: "
        + ", ".join(f"{k} {v.originals:.3f}/{v.edits:.3f}/{v.both:.3f}" for k, v in scored.items())
    )
    return EditScores(pairs=len(pairs), **scored)


# Short lines a reader labels at once, which turn on a negation or a hedge: each model card
# shows how the model reads them. The first two the default model has long read wrong.
HARD_LINES = (
    ("I can't say I enjoyed it.", 0),
    ("Hardly a masterpiece.", 0),
    ("Not bad, actually.", 1),
    ("The film is not good.", 0),
    ("I expected to hate it, but I loved it.", 1),
    ("Great cast, terrible movie.", 0),
)


def positive_probabilities(model, vectorizer, texts: list[str]) -> np.ndarray:
    """P(positive) of raw texts, as the exported model gives it."""
    from .features import predict_features
    from .text import tokenize_corpus

    return predict_features(model, vectorizer.features(tokenize_corpus(texts)))[:, 0]


def hard_lines(model, vectorizer) -> list[LineRead]:
    """The model's reading of HARD_LINES."""
    p = positive_probabilities(model, vectorizer, [text for text, _ in HARD_LINES])
    return [LineRead(text, label, float(q)) for (text, label), q in zip(HARD_LINES, p)]


def missed_edits(model, vectorizer, pairs, k: int = 5) -> list[MissedEdit]:
    """Up to k pairs (counterfactuals.Pairs) whose edit the model reads wrong, the shortest
    first: what the model card shows of the edits it still gets wrong."""
    texts, labels = pairs.rows()
    p = positive_probabilities(model, vectorizer, texts)
    n = len(pairs)
    wrong = np.flatnonzero((p[n:] >= 0.5) != (labels[n:] == 1))
    shortest = sorted(wrong, key=lambda i: len(pairs.edit[i]))[:k]
    return [
        MissedEdit(
            pairs.original[i], pairs.edit[i], int(pairs.label[i]), float(p[i]), float(p[n + i])
        )
        for i in shortest
    ]


def expected_calibration_error(labels, probabilities, bins: int = 10) -> tuple[float, list[dict]]:
    """ECE over equal-width probability bins, and the bins (for a reliability diagram).

    ECE = sum over bins of
    (share of reviews in the bin) * |mean predicted P(positive) - share positive|.
    """
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        conf, freq = float(p[inside].mean()), float(y[inside].mean())
        ece += inside.mean() * abs(conf - freq)
        table.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "n": int(inside.sum()),
                "mean_probability": conf,
                "fraction_positive": freq,
            }
        )
    return float(ece), table


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for an accuracy p measured on n independent reviews."""
    if n == 0:
        return float("nan"), float("nan")
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return centre - half, centre + half


def correct(labels, probabilities, threshold: float = 0.5) -> np.ndarray:
    """Per review: is the predicted label (P(positive) >= threshold) the true one?"""
    return (np.asarray(probabilities) >= threshold) == (np.asarray(labels) == 1)


def mcnemar(first_correct, second_correct, names=("first", "second")) -> dict:
    """McNemar's exact test of two classifiers scored on the same reviews.

    Only the discordant reviews (one right, the other wrong) carry information; under the null
    hypothesis of equal accuracy each is equally likely to favour either, so the count won by the
    first is Binomial(discordant, 1/2): the two-sided exact binomial p-value. Like the Wilson
    interval, it takes the reviews as independent.
    """
    a, b = np.asarray(first_correct, bool), np.asarray(second_correct, bool)
    first_only, second_only = int((a & ~b).sum()), int((~a & b).sum())
    discordant = first_only + second_only
    # No discordant review: no evidence either way (binomtest refuses n = 0).
    p = binomtest(first_only, discordant, 0.5).pvalue if discordant else 1.0
    return {
        "test": "McNemar, exact (two-sided binomial on the discordant reviews)",
        "n": len(a),
        f"{names[0]}_only_correct": first_only,
        f"{names[1]}_only_correct": second_only,
        "p_value": float(p),
    }


def format_table(columns: dict[str, SplitScores]) -> str:
    """Side-by-side table, one column per evaluated split or model."""
    names = list(columns)
    rows = [
        ("accuracy", "{:.4f}"),
        ("precision", "{:.4f}"),
        ("recall", "{:.4f}"),
        ("f1", "{:.4f}"),
        ("roc_auc", "{:.4f}"),
        ("ece", "{:.4f}"),
        ("n", "{:d}"),
    ]
    width = max(12, *(len(n) + 2 for n in names))
    lines = ["metric".ljust(12) + "".join(n.rjust(width) for n in names)]
    for key, fmt in rows:
        lines.append(
            key.ljust(12)
            + "".join(fmt.format(getattr(columns[n], key)).rjust(width) for n in names)
        )
    lines.append(
        "acc 95% CI".ljust(12)
        + "".join("{:.3f}-{:.3f}".format(*columns[n].accuracy_95ci).rjust(width) for n in names)
    )
    for n in names:
        cm = columns[n].confusion_matrix
        lines.append(f"confusion ({n}): TN {cm['tn']}  FP {cm['fp']}  FN {cm['fn']}  TP {cm['tp']}")
    return "\n".join(lines)
