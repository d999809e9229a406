"""Text standardization, tokenization and vectorization, defined once as core TensorFlow ops.

The same functions turn the training corpus into token ids and run inside the exported
SavedModel, so a raw review is tokenized identically at training and at serving time. Only
ops from TensorFlow's standard build are used (TF Serving has no tensorflow-text ops).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from .files import atomic_write_text
from .progress import bar

PAD_ID = 0
OOV_ID = 1
NO_NGRAM_ID = 1  # the one n-gram id of an empty review; no real n-gram hashes to it

# Tags start with a letter, '/' or '!': "<br />", "</i>", "<!-- -->". A bare "<" as in "<3" or
# "a < b" is text, as BeautifulSoup reads it.
_TAG = r"<[a-zA-Z/!][^<>]*>"
# The entities that occur in reviews; "&amp;" last so "&amp;lt;" becomes "&lt;", as in HTML.
_ENTITIES = (
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&quot;", '"'),
    ("&#39;", "'"),
    ("&apos;", "'"),
    ("&nbsp;", " "),
    ("&amp;", "&"),
)
_SPACE = r"[\pZ\t\n\v\f\r]"  # Unicode separators and the ASCII spaces tf.strings.split splits on
_PUNCT = r"([^\pL\pN\pM\pZ\t\n\v\f\r'])"
_SUFFIX = r"(?:s|re|ll|ve|d|m)"  # contractions GloVe's tokenizer splits off: 's 're 'll 've 'd 'm
# Each rule below sees words separated by two spaces (and puts two where it splits one), so a
# space one match consumes is never the one the next match needs: RE2 has no lookaround.
_APOSTROPHE_RULES = (
    ("n't", "  n't"),  # did n't, ca n't
    (r"('+)(\s|$)", r"  \1\2"),  # closing quotes: ... '
    (rf"((?:'+{_SUFFIX})+)(\s|$)", r"  \1\2"),  # film 's, i 'd 've
    (r"(^|\s)('+)", r"\1\2  "),  # opening quotes: ' ...
    (rf"(^|\s)('+)\s+({_SUFFIX}(?:'+{_SUFFIX})*)(\s|$)", r"\1\2\3\4"),  # ... but 's stays 's
)


def standardize(texts: tf.Tensor) -> tf.Tensor:
    """Raw review strings -> lower-case strings with tags removed and tokens separated by one space.

    GloVe 6B was trained on Stanford-tokenized text, so contractions are split the same way
    ("don't" -> "do n't", "film's" -> "film 's"), punctuation becomes tokens of its own and
    apostrophes used as quotes too. Nothing is removed: "not good" keeps its "not".
    Idempotent: standardize(standardize(x)) == standardize(x), so text rebuilt from the tokens
    reads as the tokens (entities and tags cannot re-form: "&" and "<" come out space-separated).
    """
    # Entities first, so an escaped tag ("&lt;i&gt;") is removed as BeautifulSoup would read it.
    x = texts
    for entity, char in _ENTITIES:
        x = tf.strings.regex_replace(x, entity, char)
    x = tf.strings.regex_replace(x, _TAG, " ")
    x = tf.strings.lower(x, encoding="utf-8")
    x = tf.strings.regex_replace(x, _PUNCT, r" \1 ")
    x = tf.strings.regex_replace(x, _SPACE + "+", "  ")
    for pattern, replacement in _APOSTROPHE_RULES:
        x = tf.strings.regex_replace(x, pattern, replacement)
    return tf.strings.strip(tf.strings.regex_replace(x, _SPACE + "+", " "))


def tokenize(texts) -> tf.RaggedTensor:
    """Raw review strings (1-D) -> ragged [batch, tokens] of token strings."""
    return tf.strings.split(standardize(tf.convert_to_tensor(texts, tf.string)))


def tokenize_corpus(texts: Sequence[str], chunk: int = 4096) -> tf.RaggedTensor:
    """tokenize() over a large list, in chunks so the regex work stays in cache-sized pieces."""
    parts = []
    with bar(total=len(texts), desc="tokenizing") as progress:
        for i in range(0, len(texts), chunk):
            parts.append(tokenize(list(texts[i : i + chunk])))
            progress.update(min(chunk, len(texts) - i))
    return tf.concat(parts, axis=0) if parts else tf.ragged.constant([[]], dtype=tf.string)[:0]


def token_lists(tokens: tf.RaggedTensor) -> list[list[str]]:
    """Ragged token strings -> Python lists of str, row by row."""
    return [[t.decode("utf-8") for t in row] for row in tokens.to_list()]


def build_vocabulary(tokens: tf.RaggedTensor, max_size: int, min_count: int) -> list[str]:
    """Most frequent tokens first (ties broken alphabetically, so the result is deterministic)."""
    words, counts = np.unique(tokens.flat_values.numpy(), return_counts=True)
    order = np.lexsort((words, -counts))
    keep = [i for i in order[:max_size] if counts[i] >= min_count]
    return [words[i].decode("utf-8") for i in keep]


def training_vocabulary(reviews: Sequence[str], cfg) -> tuple[tf.RaggedTensor, list[str]]:
    """The training reviews' tokens and the vocabulary built from them: the one vocabulary that
    training and pretraining share, from the training split only."""
    tokens = tokenize_corpus(list(reviews))
    return tokens, build_vocabulary(tokens, cfg.vocab_size, cfg.min_count)


# one token per line, most frequent first, beside every run's and export's model
VOCAB_FILE = "vocab.txt"


def save_vocabulary(vocabulary: Sequence[str], folder: Path) -> None:
    atomic_write_text(Path(folder) / VOCAB_FILE, "".join(f"{token}\n" for token in vocabulary))


def load_vocabulary(folder: Path) -> list[str]:
    return (Path(folder) / VOCAB_FILE).read_text(encoding="utf-8").split("\n")[:-1]


class Vectorizer(tf.Module):
    """Token strings -> the model's integer features.

    "token_ids": vocabulary lookup, then head+tail truncation to max_len. Id 0 is padding and 1 is
    out-of-vocabulary; vocabulary word i has id i + 2.
    "ngram_ids" (when ngram_buckets > 0): the distinct 1- to ngram_order-grams of the whole review,
    hashed into ids 2 .. ngram_buckets - 1, in order of first occurrence, for the model's
    bag-of-n-grams part (binary features: a word said twice counts once). Id 0 is padding; id 1
    (NO_NGRAM_ID) stands for "no n-gram at all" and no real n-gram shares it, so its weight stays 0.
    An empty review gets one id 1 in each, so every row has at least one unmasked step.
    """

    def __init__(
        self,
        vocabulary: Iterable[str],
        max_len: int,
        head_tokens: int,
        ngram_buckets: int = 0,
        ngram_order: int = 2,
    ):
        super().__init__(name="vectorizer")
        self.vocabulary = list(vocabulary)
        self.max_len = int(max_len)
        self.head_tokens = int(head_tokens)
        self.ngram_buckets = int(ngram_buckets)
        self.ngram_order = int(ngram_order)
        keys = tf.constant(self.vocabulary, tf.string)
        values = tf.range(2, len(self.vocabulary) + 2, dtype=tf.int64)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, values), default_value=OOV_ID
        )

    @classmethod
    def from_config(cls, vocabulary, cfg) -> "Vectorizer":
        return cls(vocabulary, cfg.max_len, cfg.head_tokens, cfg.ngram_buckets, cfg.ngram_order)

    @property
    def size(self) -> int:
        """Number of token ids, padding and OOV included."""
        return len(self.vocabulary) + 2

    def features(self, tokens: tf.RaggedTensor) -> dict[str, tf.RaggedTensor]:
        ids = tf.cast(tf.ragged.map_flat_values(self.table.lookup, tokens), tf.int32)
        out = {"token_ids": _truncate_head_tail(_fill_empty(ids), self.max_len, self.head_tokens)}
        if self.ngram_buckets:
            grams = tf.concat([_ngrams(tokens, n) for n in range(1, self.ngram_order + 1)], axis=1)
            hashed = tf.ragged.map_flat_values(
                tf.strings.to_hash_bucket_fast, grams, self.ngram_buckets - 2
            )
            out["ngram_ids"] = _fill_empty(
                _distinct(tf.cast(hashed + 2, tf.int32), self.ngram_buckets)
            )
        return out

    def __call__(self, texts) -> dict[str, tf.Tensor]:
        """Raw strings -> dense [batch, longest] int32 features, right-padded with 0."""
        return dense(self.features(tokenize(texts)))

    def from_tokens(self, tokens: tf.Tensor) -> dict[str, tf.Tensor]:
        """Dense [batch, n] token strings right-padded with "" (no token is empty): as __call__."""
        return dense(self.features(tf.RaggedTensor.from_tensor(tokens, padding="")))


def dense(features: dict[str, tf.RaggedTensor]) -> dict[str, tf.Tensor]:
    return {k: v.to_tensor(default_value=PAD_ID) for k, v in features.items()}


def _ngrams(tokens: tf.RaggedTensor, n: int) -> tf.RaggedTensor:
    """Each row's n-grams as space-joined strings (none for rows shorter than n)."""
    if n == 1:
        return tokens
    return tf.strings.join([tokens[:, i : i - n + 1 or None] for i in range(n)], separator=" ")


def _distinct(ids: tf.RaggedTensor, size: int) -> tf.RaggedTensor:
    """Each row's distinct ids, in order of first occurrence (ids lie in [0, size))."""
    rows = ids.value_rowids()
    key, _ = tf.unique(rows * size + tf.cast(ids.flat_values, tf.int64))  # rows stay in order
    return tf.RaggedTensor.from_value_rowids(
        tf.cast(key % size, ids.dtype), key // size, nrows=ids.nrows()
    )


def _fill_empty(ids: tf.RaggedTensor) -> tf.RaggedTensor:
    """Append one OOV id to each empty row: a fully masked row would make pooling divide by zero."""
    empty = tf.cast(tf.equal(ids.row_lengths(), 0), ids.row_splits.dtype)
    filler = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(empty)], tf.constant(OOV_ID, ids.dtype)), empty
    )
    return tf.concat([ids, filler], axis=1)


def _truncate_head_tail(ids: tf.RaggedTensor, max_len: int, head: int) -> tf.RaggedTensor:
    """Keep the first `head` and the last `max_len - head` ids of rows longer than max_len."""
    n = ids.row_lengths()
    pos = tf.ragged.range(tf.minimum(n, max_len))
    # On flat values: ragged broadcasting traces into about 1,500 ops, a second per trace.
    at, row = pos.flat_values, pos.value_rowids()
    skip = tf.gather(tf.maximum(n - max_len, 0), row)  # ids dropped from the middle of the row
    src = tf.gather(ids.row_starts(), row) + at + tf.where(at >= head, skip, tf.zeros_like(skip))
    return pos.with_flat_values(tf.gather(ids.flat_values, src))
