"""Minimal pairs: the human counterfactual pairs (read, left out where they would leak, held out
by pair) and the made-up ones (deterministic for a seed, each one negation or antonym apart)."""

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CONFIG, write_pairs

from imdb_sentiment import augment, counterfactuals, data
from imdb_sentiment.config import Config
from imdb_sentiment.files import UserError


@pytest.fixture(scope="module")
def splits(tiny_csv):
    return data.load(tiny_csv, Config(**TINY_CONFIG))


def as_rows(texts, labels) -> pd.DataFrame:
    return pd.DataFrame(
        {"review": list(texts), "sentiment": ["positive" if y else "negative" for y in labels]}
    )


def test_pairs_of_validation_or_test_reviews_are_left_out_and_counted(splits, tmp_path):
    originals = pd.concat(
        [
            as_rows(splits.train.review[:12], splits.train.label[:12]),
            as_rows(splits.val.review[:3], splits.val.label[:3]),
            as_rows(splits.test.review[:2], splits.test.label[:2]),
        ]
    )
    write_pairs(tmp_path / "train_paired.tsv", originals)
    write_pairs(tmp_path / "dev_paired.tsv", originals[:4])
    cfg = Config(**{**TINY_CONFIG, "counterfactual_holdout": 0.25})
    pairs = counterfactuals.load(tmp_path, splits, cfg)
    assert pairs.report["train_pairs_read"] == 17 and pairs.report["dev_pairs"] == 4
    assert pairs.report["train_pairs_left_out_val"] == 3
    assert pairs.report["train_pairs_left_out_test"] == 2
    assert (len(pairs.train), len(pairs.held_out)) == (9, 3)
    assert pairs.report["train_pairs"] == 9 and pairs.report["held_out_pairs"] == 3
    used = set(pairs.train.original + pairs.held_out.original)
    assert used == set(splits.train.review[:12])  # held out by pair, never split inside one
    assert not set(pairs.train.original) & set(pairs.held_out.original)
    assert set(pairs.val.original) == set(splits.val.review[:3])  # for the blend alone
    # The same seed holds out the same pairs: evaluation rebuilds what training held out.
    again = counterfactuals.load(tmp_path, splits, cfg)
    assert again.held_out.original == pairs.held_out.original


def test_the_original_is_the_text_found_in_the_data_and_labels_are_opposite(splits, tmp_path):
    review, label = splits.train.review[0], int(splits.train.label[0])
    edit = "an edit nobody wrote before"
    sentiments = ["Negative", "Positive"] if label else ["Positive", "Negative"]
    rows = [(sentiments[0], edit, 7), (sentiments[1], review, 7)]  # the edit comes first
    pd.DataFrame(rows, columns=["Sentiment", "Text", "batch_id"]).to_csv(
        tmp_path / "p.tsv", sep="\t", index=False
    )
    known = {counterfactuals.normalized(r) for r in splits.train.review}
    pairs = counterfactuals.read_pairs(tmp_path / "p.tsv", known)
    assert pairs.original == [review] and pairs.edit == [edit] and pairs.label.tolist() == [label]
    texts, labels = pairs.rows()
    assert texts == [review, edit] and labels.tolist() == [label, 1 - label]
    # Markup and punctuation the editors dropped do not hide an original.
    assert counterfactuals.normalized("A <br />GOOD film!!") == counterfactuals.normalized(
        "a good film"
    )


@pytest.mark.parametrize(
    "rows, message",
    [
        ([("Positive", "a", 1), ("Positive", "b", 1)], "not a pair of a Positive and a Negative"),
        ([("Positive", "a", 1)], "not a pair"),
        ([("Good", "a", 1), ("Negative", "b", 1)], "not a pair"),
    ],
)
def test_a_malformed_pairs_file_is_refused_naming_it(tmp_path, rows, message):
    path = tmp_path / "train_paired.tsv"
    pd.DataFrame(rows, columns=["Sentiment", "Text", "batch_id"]).to_csv(
        path, sep="\t", index=False
    )
    with pytest.raises(UserError, match=f"{path}: batch_id 1 is {message}"):
        counterfactuals.read_pairs(path)
    path.write_text("Text\tbatch_id\nx\t1\n")
    with pytest.raises(UserError, match="no column Sentiment"):
        counterfactuals.read_pairs(path)


def test_pairs_are_looked_for_given_beside_the_data_or_turned_off(
    tmp_path, tiny_pairs, monkeypatch
):
    assert counterfactuals.find(str(tiny_pairs), "x.csv", tmp_path) == tiny_pairs
    assert counterfactuals.find("none", "x.csv", tmp_path) is None
    with pytest.raises(UserError, match="no train_paired.tsv, dev_paired.tsv here"):
        counterfactuals.find(str(tmp_path), "x.csv", tmp_path)
    monkeypatch.delenv(counterfactuals.ENV_VAR)  # as on a user's machine
    beside = tmp_path / "data" / "cad"  # the layout of a data folder: data/imdb/x.csv, data/cad
    beside.mkdir(parents=True)
    for name in counterfactuals.CAD_SHA256:
        (beside / name).write_bytes((tiny_pairs / name).read_bytes())
    found = counterfactuals.find(None, str(tmp_path / "data" / "imdb" / "x.csv"), tmp_path / "c")
    assert found == beside


def test_negation_is_put_in_or_taken_out_where_the_verdict_is():
    polar = {"good": 1.9, "bad": -2.5, "great": 3.1}
    flip = augment._negation_flip
    assert flip("the film is good .".split(), 1, polar) == "the film is not good .".split()
    assert flip("it was really great".split(), 1, polar) == "it was not really great".split()
    assert flip("not bad at all".split(), 1, polar) == "bad at all".split()
    assert flip("it is n't bad".split(), 1, polar) == "it is bad".split()
    assert flip("a good film".split(), 1, polar) is None  # no copula to negate
    assert flip("the film is bad".split(), 1, polar) is None  # says the other thing already


def test_made_up_pairs_are_the_same_for_a_seed_and_flip_the_label():
    rng = np.random.default_rng(0)
    words = ["the", "film", "is", "was", "plot", "good", "bad", "great", "awful", "."]
    tokens = [list(rng.choice(words, size=rng.integers(4, 20))) for _ in range(300)]
    labels = rng.integers(0, 2, size=300)
    polar = augment.polarity_of(words)
    assert set(polar) == {"good", "bad", "great", "awful"}
    first = augment.negation_pairs(tokens, labels, polar, 40, seed=3)
    assert first[0] and first[0] == augment.negation_pairs(tokens, labels, polar, 40, seed=3)[0]
    assert first[0] != augment.negation_pairs(tokens, labels, polar, 40, seed=4)[0]
    rows, y = first
    assert len(rows) <= 80 and (y[0::2] == 1 - y[1::2]).all()
    for a, b in zip(rows[0::2], rows[1::2]):  # one token put in or taken out
        assert abs(len(a) - len(b)) == 1 and "not" in a + b or "n't" in a + b
    swap = {"good": "bad", "bad": "good", "great": "awful", "awful": "great"}
    reviews, y = augment.antonym_reviews(tokens, labels, polar, swap, 50, seed=3)
    assert reviews == augment.antonym_reviews(tokens, labels, polar, swap, 50, seed=3)[0]
    for review, label in zip(reviews, y):
        assert np.sign(sum(polar.get(t, 0) for t in review)) == (1 if label else -1)
