"""Short inputs: the cuts of a review, their re-tokenization, and the measure on a trained model."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import review_texts, synthetic_reviews
from hypothesis import example, given, settings
from sklearn.feature_extraction.text import TfidfVectorizer

from imdb_sentiment import data, text
from imdb_sentiment.config import Config
from imdb_sentiment.short import (
    CUTS,
    as_text,
    cut,
    cut_copies,
    cut_texts,
    for_baseline,
    sentences,
)

SHORT_REVIEWS = Path(__file__).parent / "data" / "short_reviews.csv"
# Reviews as IMDB has them: markup, entities, contractions, quotes, ellipses, scores, "Mr.".
REAL_LOOKING = [
    "I didn't expect much.<br /><br />But Mr. Smith's performance is &quot;stunning&quot;... "
    "Wow!!! The ending? Perfect. 9/10",
    "This film's plot makes no sense, the actors can't act and I won't watch it again. Avoid it.",
    "'Amélie' is naïve — and wonderful!<i>Really</i> it's a must-see (trust me).\"",
    "no punctuation at all just words going on and on about a film that was pretty good",
    "",
]


def tokens(review: str) -> list[str]:
    return [t.decode("utf-8") for t in text.tokenize([review]).to_list()[0]]


def test_first_k_tokens_and_whole_reviews_shorter_than_k():
    toks = tokens(REAL_LOOKING[1])
    assert (
        cut(toks, "first_10_tokens")
        == toks[:10]
        == ["this", "film", "'s", "plot", "makes", "no", "sense", ",", "the", "actors"]
    )
    assert cut(toks, "first_40_tokens") == toks  # 26 tokens: kept whole
    assert all(cut([], name) == [] for name in CUTS)


def test_sentences_end_at_runs_of_end_marks_and_keep_trailing_punctuation():
    toks = tokens(REAL_LOOKING[0])
    assert [" ".join(s) for s in sentences(toks)] == [
        "i did n't expect much .",
        "but mr .",  # an abbreviation ends a sentence too
        'smith \'s performance is " stunning " . . .',
        "wow ! ! !",
        "the ending ?",
        "perfect .",
        "9 / 10",
    ]
    assert cut(toks, "first_sentence") == tokens("I didn't expect much.")
    assert cut(toks, "last_sentence") == ["9", "/", "10"]  # the verdict
    # Pieces without a word (a quote, a bracket, dots) join a neighbour rather than stand alone.
    assert sentences(tokens('Great. "')) == [["great", ".", '"']]
    assert sentences(tokens('He said "great." (Really!) ... So?')) == [
        ["he", "said", '"', "great", "."],
        ['"', "(", "really", "!", ")", ".", ".", "."],
        ["so", "?"],
    ]
    assert sentences(tokens("... and so it ends")) == [[".", ".", ".", "and", "so", "it", "ends"]]


def test_a_review_without_punctuation_is_one_sentence_and_an_empty_one_none():
    toks = tokens(REAL_LOOKING[3])
    assert sentences(toks) == [toks]
    assert cut(toks, "first_sentence") == cut(toks, "last_sentence") == toks
    assert sentences([]) == [] and sentences(tokens(" <br /> ")) == []
    assert sentences(tokens("!!")) == [["!", "!"]]  # punctuation only: kept, not dropped


def assert_cuts_read_back(review: str):
    toks = tokens(review)
    cuts = [cut(toks, name) for name in CUTS]
    again = [
        [t.decode("utf-8") for t in row]
        for row in text.tokenize([as_text(c) for c in cuts]).to_list()
    ]
    assert again == cuts, review


@pytest.mark.parametrize("review", REAL_LOOKING + synthetic_reviews(20, seed=3).review.tolist())
def test_cut_text_tokenizes_to_exactly_the_cut_tokens(review):
    assert_cuts_read_back(review)


@settings(max_examples=100, deadline=None)
@given(review_texts)
@example("x'd's' ''hello'' ' s don'tn't &amp;lt;i&amp;gt; it's. Wow!! 'Bye'.")
def test_cut_text_tokenizes_to_exactly_the_cut_tokens_for_any_text(review):
    assert_cuts_read_back(review)


@pytest.mark.parametrize("review", REAL_LOOKING)
def test_the_baseline_reads_a_whole_cut_as_it_reads_the_raw_review(review):
    """The tokens joined again read, to the baseline's own tokenizer, as the raw review: "did n't"
    alone would lose the "didn" it learnt from."""
    analyze = TfidfVectorizer(ngram_range=(1, 2)).build_analyzer()
    whole = as_text(tokens(review))
    assert analyze(for_baseline(whole)) == analyze(data.strip_html(review).lower())
    assert "didn" in analyze(for_baseline(as_text(tokens("I didn't."))))


def member_mean_logit(members, x) -> np.ndarray:
    from imdb_sentiment.train import predict_features

    p = predict_features(members, {"token_ids": x["token_ids"]}).astype(np.float64)
    assert p.shape[1] == Config().lstm_members
    return (np.log(p) - np.log1p(-p)).mean(axis=1)


@pytest.mark.parametrize("buckets", [64, 0])
def test_each_column_is_the_accuracy_of_that_model_on_the_cut_texts(buckets):
    """The blend, each part and the baseline scored on the cut texts, each on its own path."""
    from imdb_sentiment.model import build_model, lstm_model, part_logits, set_bag
    from imdb_sentiment.short import short_inputs
    from imdb_sentiment.train import predict_features

    df = synthetic_reviews(40, seed=5)
    y = (df.sentiment == "positive").to_numpy()
    cfg = Config(lstm_units=4, max_len=64, head_tokens=16, ngram_buckets=buckets)
    vec = text.Vectorizer.from_config(text.build_vocabulary(text.tokenize(df.review), 100, 1), cfg)
    rng = np.random.default_rng(0)
    model = build_model(cfg, rng.normal(size=(vec.size, 50)).astype("float32"))
    if buckets:
        set_bag(model, rng.normal(size=buckets).astype("float32"), 0.1)

    def odd(texts):
        return np.array([len(t) % 2 for t in texts], float)  # a baseline of sorts

    short = short_inputs(model, vec, df.review, y.astype(int), odd)
    # Each part's model built once, not once per cut: a new model is traced anew on every predict.
    members, parts = lstm_model(model), part_logits(model) if buckets else None
    for name in CUTS:
        texts = [as_text(cut(tokens(r), name)) for r in df.review]
        x = vec.features(text.tokenize_corpus(texts))
        want = {
            "blend": predict_features(model, x)[:, 0] >= 0.5,
            # the LSTM part: its members' mean log-odds (three members by default)
            "lstm": member_mean_logit(members, x) >= 0,
            "baseline": odd([for_baseline(t) for t in texts]) >= 0.5,
        }
        if buckets:
            want["bag"] = predict_features(parts, x)[:, 1] >= 0
        got = short[name].to_dict()
        assert set(got) == {"n", "mean_tokens", *want} and got["n"] == len(df), name
        for key, predicted in want.items():
            assert got[key] == pytest.approx((predicted == y).mean()), (name, key)


def test_the_baseline_fitted_once_scores_as_fit_baseline_fits_it(tiny_csv):
    from imdb_sentiment.baseline import fit_baseline, fit_tfidf

    splits = data.load(tiny_csv, Config(seed=7))
    alone, alone_p = fit_baseline(splits)
    reused, reused_p = fit_baseline(splits, model=fit_tfidf(splits))
    for name in ("val", "test"):
        np.testing.assert_array_equal(alone_p[name], reused_p[name])
    assert alone.seconds > 0 and reused.seconds > 0
    alone.seconds = reused.seconds = None
    assert alone == reused and set(alone.to_dict()) == {"C", "val", "test"}


def test_hand_written_short_reviews_get_valid_probabilities(trained):
    """A regression check of the pipeline on what users type; the tiny model learnt synthetic
    words, so its answers are not judged here."""
    from imdb_sentiment.predict import Predictor

    df = pd.read_csv(SHORT_REVIEWS)
    assert list(df.columns) == ["review", "sentiment"] and len(df) >= 40
    assert set(df.sentiment) == {"positive", "negative"} and df.review.is_unique
    assert df.review.str.len().max() < 100 and not df.review.str.strip().eq("").any()
    out = Predictor(trained["version"]).predict(df.review.tolist())
    p = np.array([o["probability"] for o in out])
    assert len(out) == len(df) and np.isfinite(p).all() and ((0 <= p) & (p <= 1)).all()
    assert [o["label"] for o in out] == ["positive" if q >= 0.5 else "negative" for q in p]


def test_training_measures_short_inputs_and_reports_them(trained):
    run = trained["run_dir"]
    short = json.loads((run / "metrics.json").read_text())["short_inputs"]
    assert list(short) == list(CUTS)
    for name, row in short.items():
        assert set(row) == {"n", "mean_tokens", "blend", "lstm", "bag", "baseline"}, name
        assert all(0 <= row[key] <= 1 for key in ("blend", "lstm", "bag", "baseline")), name
        assert row["n"] == json.loads((run / "metrics.json").read_text())["val"]["n"]
    assert short["first_10_tokens"]["mean_tokens"] == 10  # synthetic reviews are longer
    report = (run / "report.md").read_text()
    assert "## Accuracy on short inputs (validation)" in report
    assert "](short_inputs.png)" in report and (run / "short_inputs.png").stat().st_size > 10_000
    assert f"| first sentence | {short['first_sentence']['mean_tokens']:.1f} |" in report


def test_short_inputs_blend_is_the_served_models_accuracy_on_the_cut_texts(trained, tiny_csv):
    """The cut texts, fed to the exported model as raw text, score as metrics.json states."""
    from imdb_sentiment.predict import Predictor

    run = trained["run_dir"]
    val = data.load(tiny_csv, Config.load(run / "config.json")).val
    short = json.loads((run / "metrics.json").read_text())["short_inputs"]
    predictor = Predictor(trained["version"])
    for name in CUTS:
        texts = [as_text(cut(tokens(r), name)) for r in val.review]
        p = np.array([o["probability"] for o in predictor.predict(texts)])
        assert ((p >= 0.5) == (val.label == 1)).mean() == pytest.approx(short[name]["blend"]), name


def test_cut_copies_are_first_or_last_5_to_60_ids_of_their_review_and_repeat_with_the_seed():
    rng = np.random.default_rng(0)
    rows = [list(rng.integers(2, 100, size=n)) for n in (0, 3, 5, 30, 61, 400)]
    ids = tf.ragged.constant(rows, dtype=tf.int32)
    cuts = cut_copies(ids, copies=3, seed=7).to_list()
    assert len(cuts) == 3 * len(rows)
    ends = set()
    for i, piece in enumerate(cuts):
        row = rows[i // 3]
        if len(row) <= 5:
            assert piece == row  # shorter than any k: whole
            continue
        assert 5 <= len(piece) <= min(60, len(row))
        assert piece in (row[: len(piece)], row[-len(piece) :])
        ends.add(piece == row[-len(piece) :])
    assert ends == {True, False}  # both first and last cuts occur
    assert cut_copies(ids, copies=3, seed=7).to_list() == cuts
    assert cut_copies(ids, copies=3, seed=8).to_list() != cuts


def test_cut_texts_give_every_cut_of_every_review_cut_by_cut():
    reviews = ["It starts well. " + "word " * 30 + "and on. It ends badly!", "Short."]
    texts = cut_texts(reviews)
    assert len(texts) == len(CUTS) * 2
    assert texts[0] == " ".join(["it", "starts", "well", "."] + ["word"] * 6)  # first 10 tokens
    assert texts[1] == "short ."  # the short review stays whole
    assert texts[-4:] == ["it starts well .", "short .", "it ends badly !", "short ."]
