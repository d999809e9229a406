import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tensorflow as tf
from conftest import NEGATIVE, POSITIVE, synthetic_reviews, train_tiny

from imdb_sentiment import bag, data, text
from imdb_sentiment.config import Config
from imdb_sentiment.features import predict_features
from imdb_sentiment.model import NgramBag, build_model, part_logits, set_bag, set_blend
from imdb_sentiment.runs import load_artifacts


def features(reviews, buckets=4096):
    v = text.Vectorizer(["the"], max_len=64, head_tokens=16, ngram_buckets=buckets)
    return v, v.features(text.tokenize(reviews))["ngram_ids"]


def test_binary_matrix_counts_each_ngram_once_and_ignores_padding_ids():
    _, ids = features(["great great great film", ""])
    m = bag.binary_matrix(ids, 4096)
    assert m.shape == (2, 4096)
    assert m[0].nnz == 4 and set(m[0].data) == {1.0}  # great, film, "great great", "great film"
    assert m[1].nnz == 0  # the empty review's "no n-gram" id is not a feature


def test_log_count_ratios_sign_and_unseen_buckets():
    _, ids = features(["good fun", "good", "bad dull", "bad"])
    m = bag.binary_matrix(ids, 4096)
    r = bag.log_count_ratios(m, np.array([1, 1, 0, 0]), alpha=1.0)
    good, bad = (int(ids[i][0]) for i in (1, 3))
    assert r[good] > 0 > r[bad] and abs(r[good] + r[bad]) < 1e-6  # same counts, opposite sides
    assert (r[np.asarray(m.sum(axis=0)).ravel() == 0] == 0).all()


def test_word_polarity_counts_reviews_and_zeroes_rare_words():
    v = text.Vectorizer(["great", "awful", "once"], max_len=16, head_tokens=4)
    reviews = ["great great film", "great", "awful plot", "awful", "once awful", "great"]
    labels = np.array([1, 1, 0, 0, 1, 0])

    def polarity(reviews, min_reviews=1, alpha=1.0):
        ids = v.features(text.tokenize(reviews))["token_ids"]
        return bag.word_polarity(ids, labels, v.size, min_reviews, alpha)

    r = polarity(reviews)
    great, awful, once = 2, 3, 4
    assert r.shape == (5,) and r[0] == r[1] == 0  # padding and out-of-vocabulary ("film", "plot")
    assert r[great] > 0 > r[awful] and r[once] > 0  # great: 2 positive reviews to 1; awful: 1 to 2
    # "great great" counts as one review: repeating a word in a review does not move its ratio
    np.testing.assert_array_equal(r, polarity(["great film", *reviews[1:]]))
    rare = polarity(reviews, min_reviews=2)
    assert rare[once] == 0 and rare[great] == r[great]  # "once" is in one review only
    assert np.abs(polarity(reviews, alpha=1e-9)).max() <= 3.0  # clipped


@pytest.mark.parametrize("normalize", [False, True])
def test_fitted_bag_in_the_network_gives_sklearn_log_odds(caplog, normalize):
    train, val = synthetic_reviews(300, seed=3), synthetic_reviews(100, seed=4)
    label = lambda df: (df.sentiment == "positive").to_numpy().astype(int)  # noqa: E731
    # Enough buckets that no sentiment word shares one (in 4096, "boring" and "moving" do).
    buckets = 1 << 16
    vec, train_ids = features(train.review.tolist(), buckets)
    val_ids = vec.features(text.tokenize(val.review.tolist()))["ngram_ids"]
    cfg = Config(ngram_buckets=buckets, ngram_c_grid=(1.0, 10.0), ngram_normalize=normalize)
    with caplog.at_level("INFO", logger="imdb_sentiment"):
        fitted = bag.fit_bag(train_ids, label(train), val_ids, label(val), cfg)
    assert fitted["C"] in (1.0, 10.0) and fitted["val_accuracy"] > 0.95
    assert sum("validation accuracy" in line for line in caplog.messages) == 2
    w = fitted["weights"]
    sentiment = {
        word: w[int(vec.features(text.tokenize([word]))["ngram_ids"][0][0])]
        for word in POSITIVE + NEGATIVE
    }
    assert all(sentiment[word] > 0 for word in POSITIVE) and all(
        sentiment[word] < 0 for word in NEGATIVE
    )

    # The same log-odds through the network from raw strings, padding and all.
    layer = NgramBag(buckets, cfg.ngram_normalize)
    layer.build((None, None))
    layer.set_weights([w, np.float32(fitted["bias"])])
    dense = vec(tf.constant(val.review.tolist() + [""]))["ngram_ids"]
    empty = vec.features(text.tokenize([""]))["ngram_ids"]
    x = bag.features(bag.binary_matrix(tf.concat([val_ids, empty], axis=0), buckets), cfg)
    expected = x @ w + fitted["bias"]
    np.testing.assert_allclose(layer(dense).numpy()[:, 0], expected, rtol=1e-4, atol=1e-4)


def test_the_normalized_bag_divides_by_the_root_of_the_number_of_ngrams():
    layer = NgramBag(16, normalize=True)
    layer.build((None, None))
    weights = np.arange(16, dtype=np.float32)
    weights[:2] = 0  # as fit_bag leaves them: padding and "no n-gram" are never features
    layer.set_weights([weights, np.float32(0.5)])
    ids = np.array([[2, 3, 4, 5], [6, 7, 0, 0], [1, 0, 0, 0]], "int32")  # 0 pads, 1: no n-gram
    np.testing.assert_allclose(layer(ids).numpy()[:, 0], [14 / 2 + 0.5, 13 / 2**0.5 + 0.5, 0.5])
    assert not NgramBag.from_config({"buckets": 16}).normalize  # models saved before the option
    cfg = Config(ngram_normalize=True)
    m = bag.binary_matrix(features(["good fun film", "good"])[1], 4096)
    assert np.allclose(np.asarray(bag.features(m, cfg).multiply(bag.features(m, cfg)).sum(1)), 1)


def test_blend_weights_the_two_parts_log_odds():
    cfg = Config(lstm_units=4, ngram_buckets=64, ngram_normalize=False)
    model = build_model(cfg, np.random.default_rng(0).normal(size=(10, 50)).astype("float32"))
    w = np.zeros(64, np.float32)
    w[5] = 2.0
    set_bag(model, w, -0.5)
    set_blend(model, [0.5, 1.0], 0.1)
    x = {"token_ids": np.array([[3, 4]], "int32"), "ngram_ids": np.array([[5, 9]], "int32")}
    lstm, bag_logit = part_logits(model)(x).numpy()[0]
    assert bag_logit == 1.5
    np.testing.assert_allclose(
        model(x).numpy()[0, 0], 1 / (1 + np.exp(-(0.5 * lstm + 1.5 + 0.1))), rtol=1e-6
    )
    # The blend is fitted on validation, never by the optimizer.
    assert not any("blend" in v.path or "ngram_bag" in v.path for v in model.trainable_weights)


def test_fit_blend_trusts_the_informative_part():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    informative = (2 * y - 1) * 2.0 + rng.normal(size=2000)
    noise = rng.normal(size=2000)
    weights, _ = bag.fit_blend(noise, informative, y)
    assert weights[1] > 1.0 and abs(weights[0]) < 0.2


@pytest.mark.slow
def test_the_bag_also_fits_the_unlabelled_reviews_as_the_trained_lstm_labels_them(
    tiny_csv, tmp_path
):
    # A test review's text among them is left out: fitted on, it would leak into the evaluation.
    test_review = pd.read_csv(tiny_csv).query("split == 'test'").review.iloc[0]
    unlabelled = pd.DataFrame({"review": [*synthetic_reviews(200, seed=5).review, test_review]})
    unlabelled.to_csv(tmp_path / "unsup.csv", index=False)
    no_pairs = {"made_up_negations": 0, "made_up_antonyms": 0}  # the bag's rows: train + these
    run = train_tiny(
        tmp_path, tiny_csv, "--no-export", "--unlabelled", tmp_path / "unsup.csv", config=no_pairs
    )
    metrics = json.loads((run["run_dir"] / "metrics.json").read_text())
    assert metrics["parts"]["bag_unlabelled_reviews"] == 200
    assert "1 unlabelled reviews left out" in run["stderr"]
    assert "200 unlabelled reviews labelled by the LSTM" in run["stderr"]
    assert "200 unlabelled ones the LSTM labelled" in (run["run_dir"] / "report.md").read_text()

    # The saved bag is the fit of the training rows and of these rows labelled by the saved LSTM.
    art = load_artifacts(run["run_dir"])
    splits = data.load(tiny_csv, art.cfg)
    train_x, val_x, x = (
        art.vectorizer.features(text.tokenize_corpus(list(reviews)))
        for reviews in (splits.train.review, splits.val.review, unlabelled.review[:200])
    )
    lstm = predict_features(part_logits(art.model), x)[:, 0]
    saved = art.model.get_layer("ngram_bag").get_weights()[0]

    def bag_weights(pseudo):
        fitted = bag.fit_bag(
            tf.concat([train_x["ngram_ids"], x["ngram_ids"]], axis=0),
            np.concatenate([splits.train.label.to_numpy(), pseudo]),
            val_x["ngram_ids"],
            splits.val.label.to_numpy(),
            art.cfg,
        )
        return fitted["weights"]

    np.testing.assert_allclose(saved, bag_weights((lstm >= 0).astype(int)), atol=1e-6)
    assert not np.allclose(saved, bag_weights((lstm < 0).astype(int)), atol=1e-3)


def test_fits_of_the_c_grid_in_threads_are_the_fits_made_one_by_one():
    """Each C's fit runs on its own core; liblinear's primal solver draws no random numbers, so
    on a problem this small (no BLAS call split across threads) the fits, their scores and the
    choice are those of fitting one after another."""
    from imdb_sentiment.selection import fit_on_validation

    rng = np.random.default_rng(0)
    x = sp.random(600, 3000, density=0.01, format="csr", random_state=1)
    y = (x @ rng.normal(size=3000) + 0.1 * rng.normal(size=600) > 0).astype(int)
    grid = (0.03, 0.1, 0.3, 1.0)
    fits = [
        fit_on_validation(
            x[:400], y[:400], x[400:], y[400:], grid, "t", workers=w, solver="liblinear"
        )
        for w in (1, 4)
    ]
    (acc1, c1, clf1), (acc2, c2, clf2) = fits
    assert (acc1, c1) == (acc2, c2)
    assert np.array_equal(clf1.coef_, clf2.coef_)
    assert np.array_equal(clf1.intercept_, clf2.intercept_)
