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
from functools import cache
from importlib.resources import files

import numpy as np

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
) -> tuple[list[list[str]], np.ndarray, dict]:
    """Both kinds, as many as cfg asks, from the training reviews' tokens; vectors (GloVe) and
    ratios (bag.word_polarity) have one row per token id. Returns the rows, their labels and
    what was made."""
    polar = polarity_of(vocabulary)
    rows, y = negation_pairs(tokens, labels, polar, cfg.made_up_negations, cfg.seed)
    swap = antonyms(vocabulary, vectors, polar, ratios) if cfg.made_up_antonyms else {}
    more, more_y = antonym_reviews(tokens, labels, polar, swap, cfg.made_up_antonyms, cfg.seed)
    report = {
        "negation_sentence_pairs": len(rows) // 2,
        "antonym_reviews": len(more),
        "antonym_map_size": len(swap),
        "antonym_examples": dict(
            list(sorted(swap.items(), key=lambda kv: -abs(polar[kv[0]])))[:12]
        ),
    }
    log.info(
        f"made-up pairs: {report['negation_sentence_pairs']} sentence pairs by negation, "
        f"{len(more)} reviews with {len(swap)} polar words swapped for antonyms"
    )
    return rows + more, np.concatenate([y, more_y]).astype(np.int64), report
