"""Made-up minimal pairs from the training reviews themselves, each with the flipped label.

Human-made pairs are few (counterfactuals.py). Two kinds are made here, from tokens (as
text.tokenize gives them), deterministically for a seed:

- negation: a sentence of a review whose verdict word agrees with the review's label, with "not"
  put after the copula before that word ("the film is good" -> "the film is not good"), or the
  negator before a word of the other polarity taken out ("not bad" -> "bad"). Both sentences are
  kept: a short pair that differs in one word, which is what users type.
- antonyms: a whole review with every strongly polar word swapped for its nearest GloVe neighbour
  of the other polarity ("excellent" -> "awful"), kept when the review's summed word polarity
  changes sign (Wang & Culotta, AAAI 2021).

A word's polarity is its valence in the VADER lexicon (Hutto & Gilbert, 2014: mean ratings of
ten people; vaderSentiment, MIT): the log-count ratios of the training reviews
(bag.word_polarity) call "good" neutral and "purpose" negative, which people do not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import numpy as np
import tensorflow as tf

from .short import sentences

log = logging.getLogger(__name__)

NEGATORS = frozenset({"not", "n't", "never", "hardly", "no"})
COPULAS = frozenset(
    {"is", "was", "are", "were", "be", "been", "'s", "'re", "seems", "seemed", "looks", "felt"}
)
POLAR = 1.0  # |valence| (VADER's scale, -4 .. 4) from which a word carries a verdict
# Words with a valence that reviews mostly use otherwise: "looks like", "pretty bad", "kind of".
NOT_VERDICTS = frozenset(
    {"like", "likes", "pretty", "kind", "well", "yes", "no", "please", "share"}
)
MAX_SENTENCE = 30  # tokens: longer sentences rarely turn on one word


@dataclass(frozen=True)
class Kind:
    """A kind of minimal-pair row, and how training treats it."""

    name: str
    # Rows come two by two, a text and then its edit: pair_margin compares the two.
    paired: bool
    counted_as: str  # its count's key in metrics.json's pairs_trained_on
    # Whether the n-gram bag trains on it too (it always teaches the LSTM); given the Config.
    in_bag: Callable[[Any], bool] = lambda cfg: True


HUMAN = Kind("human", paired=True, counted_as="human_pairs")  # counterfactuals.py's
NEGATION = Kind("negation", paired=True, counted_as="negation_sentence_pairs")
# A whole review with its verdict words swapped teaches the bag wrong n-grams ("awful acting"
# in a positive review) unless asked for (Config.antonyms_in_bag).
ANTONYM = Kind(
    "antonym", paired=False, counted_as="antonym_reviews", in_bag=lambda cfg: cfg.antonyms_in_bag
)


@dataclass
class MadeUp:
    """The rows of one kind (token lists), their labels and, for a paired kind, each row's pair
    (a text and its edit share one number)."""

    kind: Kind
    rows: list[list[str]]
    labels: np.ndarray
    pair: np.ndarray | None = None  # None: a paired kind's rows come two by two

    @property
    def count(self) -> int:
        return len(self.rows) // 2 if self.kind.paired else len(self.rows)

    def pair_ids(self) -> np.ndarray:
        if not self.kind.paired:
            return np.full(len(self.rows), -1, np.int64)
        return np.arange(len(self.rows)) // 2 if self.pair is None else np.asarray(self.pair)


@dataclass
class PairRows:
    """The minimal-pair rows both parts train on beside the training reviews, one table: each
    row's features (text.Vectorizer.features, ragged), label, kind and pair id (the same for a
    text and its edit; -1 for a row of no pair). The LSTM's and the bag's rows are masks on it."""

    features: dict[str, tf.RaggedTensor]
    labels: np.ndarray
    kinds: list[Kind]  # the kinds the rows' `kind` indices point into
    kind: np.ndarray  # per row: its index in `kinds`
    pair: np.ndarray

    @classmethod
    def of(cls, made: list[MadeUp], vectorizer, dtype=np.int64) -> "PairRows":
        """The rows of every kind in `made`, in that order, as `vectorizer` (text.Vectorizer)
        gives their features; pair ids kept apart between kinds."""
        rows = [row for m in made for row in m.rows]
        flat = tf.constant([t for row in rows for t in row], tf.string)
        features = vectorizer.features(
            tf.RaggedTensor.from_row_lengths(flat, [len(row) for row in rows])
        )
        pair, offset = [], 0
        for m in made:
            ids = m.pair_ids()
            pair.append(np.where(ids >= 0, ids + offset, -1))
            offset += int(ids.max()) + 1 if len(ids) else 0
        return cls(
            features,
            np.concatenate([np.asarray(m.labels) for m in made] or [[]]).astype(dtype),
            [m.kind for m in made],
            np.concatenate([np.full(len(m.rows), i) for i, m in enumerate(made)] or [[]]).astype(
                np.int64
            ),
            np.concatenate(pair or [[]]).astype(np.int64),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index) -> "PairRows":
        """The rows at `index` (a boolean mask or positions), in that order."""
        index = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index)
        index = index.astype(np.int64)
        return PairRows(
            {k: tf.gather(v, index) for k, v in self.features.items()},
            self.labels[index],
            self.kinds,
            self.kind[index],
            self.pair[index],
        )

    def mask(self, keep: Callable[[Kind], bool]) -> np.ndarray:
        """Rows whose kind `keep` accepts."""
        return np.isin(self.kind, [i for i, k in enumerate(self.kinds) if keep(k)])

    def side_by_side(self) -> "PairRows":
        """The rows of paired kinds, the two texts of each pair one after the other, pairs in the
        order their first texts come."""
        paired = np.flatnonzero(self.mask(lambda k: k.paired))
        ids, first = np.unique(self.pair[paired], return_index=True)
        rank = np.empty(len(ids), np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(ids))
        return self.take(
            paired[np.lexsort((paired, rank[np.searchsorted(ids, self.pair[paired])]))]
        )

    def repeated(self, kind: Kind, times: int) -> "PairRows":
        """The rows of `kind` `times` times over (each copy a block of its own, where that kind's
        rows are), every copy's pairs their own; `times` 0 leaves them out."""
        at = np.flatnonzero(self.mask(lambda k: k == kind))
        if times == 1 or not len(at):
            return self
        rest = np.setdiff1d(np.arange(len(self)), at)
        before, after = rest[rest < at[0]], rest[rest > at[0]]
        index = np.concatenate([before, *[at] * times, after])
        rows = self.take(index)
        copy = np.repeat(np.arange(times), len(at))  # which copy each repeated row is of
        copy = np.concatenate(
            [np.zeros(len(before), np.int64), copy, np.zeros(len(after), np.int64)]
        )
        span = int(self.pair.max()) + 1 if len(self) else 1
        rows.pair = np.where(rows.pair >= 0, rows.pair + copy * span, -1)
        return rows

    def counts(self) -> dict[str, int]:
        """How many pairs (or rows, of a kind that is not paired) of each kind."""
        n = np.bincount(self.kind, minlength=len(self.kinds))
        return {k.counted_as: int(c // 2 if k.paired else c) for k, c in zip(self.kinds, n)}


@cache
def valences() -> dict[str, float]:
    """VADER's lexicon: word -> mean valence."""
    table = files("vaderSentiment").joinpath("vader_lexicon.txt").read_text(encoding="utf-8")
    return {
        word: float(mean) for word, mean, *_ in (line.split("\t") for line in table.splitlines())
    }


def polarity_of(vocabulary: list[str]) -> dict[str, float]:
    """The vocabulary's words that carry a verdict -> their valence."""
    lexicon = valences()
    return {
        w: lexicon[w]
        for w in vocabulary
        if w in lexicon and w.isalpha() and abs(lexicon[w]) >= POLAR and w not in NOT_VERDICTS
    }


ANTONYM_VALENCE = 2.0  # only clear verdicts are swapped: "brilliant", not "kill"
ANTONYM_RANK = 3000  # among the reviews' commonest words: rare ones swap for topical neighbours
ANTONYM_SIMILARITY = 0.5
REVIEW_LEAN = 0.3


def antonyms(
    vocabulary: list[str], vectors: np.ndarray, polar: dict[str, float], ratios: np.ndarray
) -> dict[str, str]:
    """Each clear verdict word -> the verdict word of the other sign nearest to it in GloVe
    (cosine), when near enough: "excellent" -> "awful". A replacement must also lean its way in
    the training reviews (log-count ratio `ratios`, one per token id, of its sign and at least
    REVIEW_LEAN): GloVe's nearest opposite of "bad" alone is "luck"."""
    index = {w: i + 2 for i, w in enumerate(vocabulary)}
    words = sorted(
        w for w in polar if abs(polar[w]) >= ANTONYM_VALENCE and index[w] < ANTONYM_RANK + 2
    )
    if not words:
        return {}
    v = vectors[[index[w] for w in words]].astype(np.float64)
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
    sign = np.sign([polar[w] for w in words])
    lean = np.array([ratios[index[w]] for w in words]) * sign >= REVIEW_LEAN
    similarity = v @ v.T
    similarity[(sign[:, None] == sign[None, :]) | ~lean[None, :]] = -np.inf
    nearest = similarity.argmax(axis=1)
    return {
        w: words[j]
        for w, j, s in zip(words, nearest, similarity[np.arange(len(words)), nearest])
        if s >= ANTONYM_SIMILARITY
    }


def negation_pairs(
    tokens: list[list[str]], labels, polar: dict[str, float], n: int, seed: int
) -> tuple[list[list[str]], np.ndarray]:
    """Up to n pairs of sentences differing by one negation, with opposite labels: rows
    [s1, s1', s2, s2', ...] and their labels."""
    rng = np.random.default_rng(seed)
    out, out_labels = [], []
    for r in rng.permutation(len(tokens)):
        if len(out) >= 2 * n:
            break
        label = int(labels[r])
        sign = 1 if label == 1 else -1
        for sentence in sentences(tokens[r]):
            if len(sentence) <= MAX_SENTENCE and (flipped := _negation_flip(sentence, sign, polar)):
                out += [sentence, flipped]
                out_labels += [label, 1 - label]
                break
    return out, np.asarray(out_labels, np.int64)


def _negation_flip(sentence: list[str], sign: int, polar: dict[str, float]) -> list[str] | None:
    """The sentence with one negation put in or taken out so that it says the opposite of
    `sign`, or None when it has no word to turn."""
    for i, word in enumerate(sentence):
        p = polar.get(word, 0.0)
        if not p:
            continue
        before = sentence[max(0, i - 3) : i]
        negated = [j for j, t in enumerate(before) if t in NEGATORS]
        if negated and np.sign(p) == -sign:  # "not bad" in a positive review: take "not" out
            j = i - len(before) + negated[-1]
            return sentence[:j] + sentence[j + 1 :]
        if not negated and np.sign(p) == sign:
            copula = [j for j, t in enumerate(before) if t in COPULAS]
            if copula:  # "is (really) good" in a positive review: "is not (really) good"
                j = i - len(before) + copula[-1] + 1
                return sentence[:j] + ["not"] + sentence[j:]
        return None  # the first polar word decides: turning a later one leaves it in charge
    return None


def antonym_reviews(
    tokens: list[list[str]],
    labels,
    polar: dict[str, float],
    swap: dict[str, str],
    n: int,
    seed: int,
) -> tuple[list[list[str]], np.ndarray]:
    """Up to n reviews with their polar words swapped for antonyms, whose summed polarity was of
    their label's sign and now is of the other: the rows and their (flipped) labels."""
    rng = np.random.default_rng(seed + 1)
    out, out_labels = [], []
    for r in rng.permutation(len(tokens)):
        if len(out) >= n:
            break
        sign = 1 if labels[r] == 1 else -1
        swapped = [swap.get(t, t) for t in tokens[r]]
        before = sum(polar.get(t, 0.0) for t in tokens[r])
        after = sum(polar.get(t, 0.0) for t in swapped)
        if before * sign > 0 and after * sign < 0:
            out.append(swapped)
            out_labels.append(1 - int(labels[r]))
    return out, np.asarray(out_labels, np.int64)


def made_up_pairs(
    tokens: list[list[str]], labels, vocabulary: list[str], vectors: np.ndarray, ratios, cfg
) -> tuple[list[MadeUp], dict]:
    """Every made-up kind, as many as cfg asks, from the training reviews' tokens; vectors (GloVe)
    and ratios (bag.word_polarity) have one row per token id. Returns the rows of each kind and
    what the antonym map holds. A new kind is one more maker here, with its Kind above."""
    polar = polarity_of(vocabulary)
    swap = antonyms(vocabulary, vectors, polar, ratios) if cfg.made_up_antonyms else {}
    made = [
        MadeUp(NEGATION, *negation_pairs(tokens, labels, polar, cfg.made_up_negations, cfg.seed)),
        MadeUp(
            ANTONYM,
            *antonym_reviews(tokens, labels, polar, swap, cfg.made_up_antonyms, cfg.seed),
        ),
    ]
    examples = sorted(swap.items(), key=lambda kv: -abs(polar[kv[0]]))[:12]
    log.info(
        "made-up pairs: "
        + ", ".join(f"{m.count} {m.kind.counted_as.replace('_', ' ')}" for m in made)
        + f" ({len(swap)} polar words swapped for antonyms)"
    )
    return made, {"antonym_map_size": len(swap), "antonym_examples": dict(examples)}
