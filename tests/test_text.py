import pytest
import tensorflow as tf
from conftest import review_texts
from hypothesis import example, given, settings
from hypothesis import strategies as st

from imdb_sentiment import text
from imdb_sentiment.data import strip_html


def tokens(s: str) -> list[str]:
    return [t.decode() for t in text.tokenize([s]).to_list()[0]]


def test_negations_and_contractions_are_kept_apart_the_glove_way():
    assert tokens("This was NOT good, and I didn't like it.") == [
        "this",
        "was",
        "not",
        "good",
        ",",
        "and",
        "i",
        "did",
        "n't",
        "like",
        "it",
        ".",
    ]
    assert tokens("The film's end, we'll see; I'm sure") == [
        "the",
        "film",
        "'s",
        "end",
        ",",
        "we",
        "'ll",
        "see",
        ";",
        "i",
        "'m",
        "sure",
    ]


def test_html_tags_are_removed_and_text_is_not():
    assert tokens("Great<br /><br />acting <i>truly</i> &amp; a <3 for a < b") == [
        "great",
        "acting",
        "truly",
        "&",
        "a",
        "<",
        "3",
        "for",
        "a",
        "<",
        "b",
    ]


def test_quotes_and_unicode_survive():
    assert tokens("'Amélie' is naïve — and wonderful!") == [
        "'",
        "amélie",
        "'",
        "is",
        "naïve",
        "—",
        "and",
        "wonderful",
        "!",
    ]


@pytest.mark.parametrize(
    "raw",
    [
        "A <b>bold</b> film.<br /><br />I loved it &amp; you will too!",
        "It wasn't &quot;bad&quot;<br/>but &lt;sigh&gt; it dragged",
        "<p>Seven out of ten</p><hr>Watch it <3",
    ],
)
def test_standardization_in_graph_reads_markup_as_beautifulsoup_does(raw):
    # The model reads raw text only; the baseline and report.md read BeautifulSoup's text.
    assert tokens(raw) == tokens(strip_html(raw))


def test_contractions_split_at_the_end_of_a_sentence_and_quotes_stay_quotes():
    assert tokens("I didn't. It's 'bad', isn't it? ''Great''") == [
        "i",
        "did",
        "n't",
        ".",
        "it",
        "'s",
        "'",
        "bad",
        "'",
        ",",
        "is",
        "n't",
        "it",
        "?",
        "''",
        "great",
        "''",
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(review_texts, min_size=1, max_size=8))
@example(["x'd's' ''hello'' ' s don'tn't &amp;lt;i&amp;gt; it's."])
def test_standardize_is_idempotent(texts):
    """Standardized text reads as its own tokens: anyone re-joining tokens relies on it."""
    once = text.standardize(tf.constant(texts))
    assert text.standardize(once).numpy().tolist() == once.numpy().tolist()


def test_vocabulary_is_from_counts_with_min_count_and_stable_ties():
    toks = text.tokenize(["b a a c", "a b d", "c"])
    assert text.build_vocabulary(toks, max_size=10, min_count=2) == ["a", "b", "c"]
    assert text.build_vocabulary(toks, max_size=2, min_count=1) == ["a", "b"]


def test_vectorizer_pads_right_keeps_head_and_tail_and_fills_empty_reviews():
    v = text.Vectorizer(["the", "movie", "good"], max_len=5, head_tokens=2)
    ids = v(tf.constant(["the movie", "", "x1 x2 x3 x4 x5 x6 the good"]))["token_ids"].numpy()
    assert ids.tolist() == [
        [2, 3, 0, 0, 0],
        [text.OOV_ID, 0, 0, 0, 0],
        [1, 1, 1, 2, 4],
    ]  # x1 x2 | x6 the good


def test_vectorizer_never_exceeds_max_len():
    v = text.Vectorizer(["w"], max_len=7, head_tokens=3)
    ids = v(tf.constant(["w " * n for n in (0, 1, 6, 7, 8, 500)]))["token_ids"].numpy()
    assert ids.shape == (6, 7)
    assert (ids[:, 0] != 0).all()


def test_ngram_ids_hash_every_unigram_and_bigram_of_the_whole_review():
    v = text.Vectorizer(["a"], max_len=2, head_tokens=1, ngram_buckets=1000)
    f = v(tf.constant(["a b c", "", "c b a"]))
    grams = f["ngram_ids"].numpy()
    assert grams.shape == (3, 5)  # a b c | a_b b_c: not truncated to max_len
    assert (grams[0] >= 2).all() and (grams[0] < 1000).all()  # 1 is kept for "no n-gram"
    assert sorted(grams[0][:3]) == sorted(grams[2][:3])  # same unigrams
    assert set(grams[0][3:]) != set(grams[2][3:])  # bigrams keep word order: "a b" is not "b a"
    assert grams[1].tolist() == [1, 0, 0, 0, 0]
    assert "ngram_ids" not in text.Vectorizer(["a"], 2, 1)(tf.constant(["a"]))


def test_ngram_ids_are_distinct_per_review_in_first_occurrence_order():
    v = text.Vectorizer(["a"], max_len=2, head_tokens=1, ngram_buckets=1 << 20)
    f = v.features(text.tokenize(["good good good", "bad good bad good", "good"]))[
        "ngram_ids"
    ].to_list()
    assert len(f[0]) == 2  # "good", "good good": a word said three times is one binary feature
    assert len(f[1]) == 4 and len(set(f[1])) == 4  # bad, good, "bad good", "good bad"
    assert f[2] == f[0][:1] and f[1][1] == f[0][0]  # the same n-gram gets the same id in every row
