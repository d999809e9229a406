"""Accuracy on short inputs, measured in-domain: validation reviews cut short.

What people type into predict.py is a line, not a review. Cut to its first 10, 20 or 40 tokens,
or to one sentence, a validation review is such a line with a known label. Each cut is scored by
the whole model, by each of its parts alone, and by the TF-IDF baseline, so the report shows
which part carries the model when little text is given. Validation only: the test split is
never cut.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from .evaluate import right_by_scorer
from .features import predict_features
from .model import scores_and_parts
from .results import CutScores
from .text import token_lists, tokenize_corpus

log = logging.getLogger(__name__)

FIRST_TOKENS = (10, 20, 40)
CUTS = tuple(f"first_{k}_tokens" for k in FIRST_TOKENS) + ("first_sentence", "last_sentence")
SENTENCE_END = frozenset({".", "!", "?"})


def sentences(tokens: Sequence[str]) -> list[list[str]]:
    """A review's tokens (as text.tokenize gives them) split into sentences.

    The last sentence matters as much as the first: reviews often end on their verdict ("Avoid
    it.", "8/10, see it."), while they open on the plot. A run of ".", "!" and "?" ends a
    sentence ("Wow!!!", "Well..."); tokens after the last one make a sentence of their own. A
    piece without a letter or digit (a closing quote or bracket after the last end mark, a
    leading "...") joins its neighbour rather than stand as a sentence. Abbreviations ("Mr.")
    end one too: rare, and a cut there is still the review's own text. Tags are gone before
    this, so a paragraph that ends without punctuation runs on into the next sentence.
    """
    pieces, current = [], []
    for i, token in enumerate(tokens):
        current.append(token)
        if token in SENTENCE_END and (i + 1 == len(tokens) or tokens[i + 1] not in SENTENCE_END):
            pieces.append(current)
            current = []
    if current:
        pieces.append(current)
    out = []
    for piece in pieces:
        if out and not (_has_word(piece) and _has_word(out[-1])):
            out[-1] += piece
        else:
            out.append(piece)
    return out


def _has_word(tokens: Sequence[str]) -> bool:
    return any(ch.isalnum() for token in tokens for ch in token)


def cut(tokens: Sequence[str], name: str) -> list[str]:
    """The tokens of one cut (a name in CUTS) of a review; a review shorter than a first-k cut
    stays whole, and an empty review gives no tokens."""
    if name.startswith("first_") and name.endswith("_tokens"):
        return list(tokens[: int(name.split("_")[1])])
    split = sentences(tokens)
    if not split:
        return []
    return split[0] if name == "first_sentence" else split[-1]


def as_text(tokens: Sequence[str]) -> str:
    """Raw text that text.tokenize reads back as exactly these tokens: standardize is idempotent."""
    return " ".join(tokens)


def for_baseline(text: str) -> str:
    """as_text() for the TF-IDF baseline, which reads raw reviews with scikit-learn's tokenizer:
    fed "did n't", it would see "did", never the "didn" (a strong negative word) it learnt from
    "didn't". The other contractions ('s 'm 're 'll 've 'd) give it the same words either way.
    Averaged over the validation cuts it moves little (0.2 points at most, measured); on "I
    didn't like it" it is the whole negation."""
    return text.replace(" n't", "n't")


def cut_texts(reviews: Sequence[str]) -> list[str]:
    """Every cut of every review, as text: all reviews' first cut (CUTS order), then all their
    second, and so on; labels follow as np.tile(labels, len(CUTS))."""
    tokens = _tokens(reviews)
    return [as_text(cut(row, name)) for name in CUTS for row in tokens]


def _tokens(reviews: Sequence[str]) -> list[list[str]]:
    return token_lists(tokenize_corpus(list(reviews)))


def cut_copies(ids: tf.RaggedTensor, copies: int, seed: int) -> tf.RaggedTensor:
    """`copies` cuts of each row of token ids, rows in order (all of row 0's, then row 1's ...):
    its first or last k ids, k drawn from 5..60 (a row shorter than k stays whole). The same seed
    gives the same cuts, so a resumed run trains on the same data."""
    rng = np.random.default_rng(seed)
    lengths = np.repeat(ids.row_lengths().numpy(), copies)
    starts = np.repeat(ids.row_starts().numpy(), copies)
    k = np.minimum(lengths, rng.integers(5, 61, size=lengths.size))
    from_end = rng.random(lengths.size) < 0.5
    begin = starts + np.where(from_end, lengths - k, 0)
    flat = np.concatenate([np.arange(b, b + n) for b, n in zip(begin, k)] or [np.zeros(0, int)])
    return tf.RaggedTensor.from_row_lengths(tf.gather(ids.flat_values, flat), k)


def short_inputs(
    model: keras.Model,
    vectorizer,
    reviews: Sequence[str],
    labels,
    baseline: Callable[[list[str]], np.ndarray] | None = None,
) -> dict[str, CutScores]:
    """{cut: its scores}: accuracy of the whole model,
    of each part alone (its log-odds >= 0) and of the baseline (P(positive) for raw texts; left
    out when None) on every cut of the reviews. "bag" is left out for a model without one."""
    y = np.asarray(labels)
    tokens = _tokens(reviews)
    scorer, names = scores_and_parts(model)
    out = {}
    for name in CUTS:
        cuts = [cut(row, name) for row in tokens]
        texts = [as_text(c) for c in cuts]
        # Tokenized again from the text, as predict.py would get it, not from the cut tokens.
        scores = predict_features(scorer, vectorizer.features(tokenize_corpus(texts)))
        base = baseline([for_baseline(t) for t in texts]) if baseline is not None else None
        right = right_by_scorer(scores, names, y, base)
        lengths = [len(c) for c in cuts]
        out[name] = CutScores(
            n=len(y),
            mean_tokens=float(np.mean(lengths)) if lengths else 0.0,
            **{key: float(r.mean()) for key, r in right.items()},
        )
        log.info(
            f"short inputs, {name.replace('_', ' ')}: "
            + ", ".join(f"{key} {r.mean():.4f}" for key, r in right.items())
        )
    return out
