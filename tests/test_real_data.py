"""Checks on the real 50k reviews; skipped where ../shared is absent (a user's clone)."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import SHARED_DATA

from imdb_sentiment import data, text
from imdb_sentiment.config import Config

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data/imdb not present")


@pytest.fixture(scope="module")
def raw():
    return data.read_reviews(SHARED_DATA)


def test_official_split_is_used_and_validation_comes_from_train(raw):
    df, report = data.clean(raw)
    assert report == {
        "rows_read": 50000,
        "dropped_empty_text": 0,
        "dropped_unknown_label": 0,
        "rows_with_invalid_utf8": 0,
    }
    train, val, test, split_report = data.split(df, Config())
    assert split_report["split"] == "official train/test"
    assert (
        len(test) == 25000
        and len(train) + len(val) == 25000 - split_report["duplicates_dropped_from_train"]
    )
    assert not set(val.review) & set(train.review)
    assert abs(val.label.mean() - 0.5) < 0.01


@pytest.mark.slow
def test_training_and_serving_give_every_review_the_same_token_ids(raw):
    """All 50k reviews: the token ids training computes (train.py and evaluate.py: clean(), then
    tokenize_corpus and features) equal those the exported graph computes from the raw string
    (the serving and token_ids signatures: Vectorizer.__call__ under a string input signature).
    The n-gram ids hash the same tokens; they are left out to keep this under two minutes."""
    df, _ = data.clean(raw)
    assert len(df) == 50000 and df.review.tolist() == raw.review.tolist()  # no cleaning before tf
    vocabulary = text.build_vocabulary(text.tokenize_corpus(df.review[:2000].tolist()), 20000, 1)
    vectorizer = text.Vectorizer(vocabulary, max_len=400, head_tokens=100)
    training = vectorizer.features(text.tokenize_corpus(df.review.tolist()))["token_ids"]
    lengths, ids = training.row_lengths().numpy(), training.flat_values.numpy()
    starts = np.concatenate([[0], np.cumsum(lengths)])
    serving = tf.function(vectorizer.__call__, input_signature=[tf.TensorSpec([None], tf.string)])
    for i in range(0, len(raw), 256):
        served = serving(tf.constant(raw.review[i : i + 256].tolist()))["token_ids"].numpy()
        real = np.arange(served.shape[1]) < lengths[i : i + 256, None]
        assert served.shape[1] == lengths[i : i + 256].max() and not served[~real].any()
        expected = ids[starts[i] : starts[min(i + 256, len(raw))]]
        np.testing.assert_array_equal(served[real], expected, err_msg=f"batch at row {i}")


def test_without_its_split_column_no_review_is_in_both_train_and_test(raw):
    """As the Kaggle CSV (the same 50k reviews, no split column) is read."""
    df, _ = data.clean(raw.assign(split=None, id=None))
    train, val, test, report = data.split(df, Config())
    assert report["duplicates_removed_before_split"] == df.review.duplicated().sum() >= 418
    assert not set(test.review) & (set(train.review) | set(val.review))
    assert len(train) + len(val) + len(test) == 50000 - report["duplicates_removed_before_split"]
