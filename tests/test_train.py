import numpy as np
import tensorflow as tf

from imdb_sentiment.augment import HUMAN, NEGATION, PairRows
from imdb_sentiment.config import Config
from imdb_sentiment.features import predict_features
from imdb_sentiment.train import make_dataset, steps_per_epoch


def ragged(lengths):
    return {
        "token_ids": tf.ragged.constant(
            [[i % 7 + 2] * n for i, n in enumerate(lengths)], dtype=tf.int32
        )
    }


def test_buckets_group_similar_lengths_and_the_step_count_is_exact():
    batching = {"batch_size": 4, "max_len": 100}
    lengths = np.random.default_rng(0).integers(1, 100, size=53)
    ids = ragged(lengths)
    batches = list(make_dataset(ids, np.arange(53), training=True, epochs=3, **batching))
    steps = steps_per_epoch(ids, **batching)
    assert len(batches) == 3 * steps
    epochs = [
        np.concatenate([y for _, y in batches[e * steps : (e + 1) * steps]]) for e in range(3)
    ]
    for order in epochs:  # every review once per epoch, in a new order each epoch
        assert sorted(order) == list(range(53))
    assert len({tuple(o) for o in epochs}) == 3
    # The order depends on the epoch's number only: a run resumed at epoch 2 gets epoch 2's batches.
    resumed = list(
        make_dataset(ids, np.arange(53), training=True, epochs=3, first_epoch=2, **batching)
    )
    np.testing.assert_array_equal(np.concatenate([y for _, y in resumed]), epochs[2])
    for x, _ in batches:  # each batch is padded only to its own longest review, within one bucket
        real = (x["token_ids"].numpy() != 0).sum(axis=1)
        assert x["token_ids"].shape[1] == real.max() and real.max() - real.min() < 25


def test_pairs_come_side_by_side_in_batches_of_their_own():
    batching = {"batch_size": 4, "max_len": 100}
    rng = np.random.default_rng(1)
    ids = ragged(rng.integers(1, 100, size=30))
    # 11 pairs: the two texts of pair k hold token 100 + k, and differ in length by one token
    lengths = np.repeat(rng.integers(2, 90, size=11), 2) + np.tile([0, 1], 11)
    pair_ids = tf.ragged.constant([[100 + i // 2] * n for i, n in enumerate(lengths)])
    pair_y = np.tile([1, 0], 11)
    pairs = PairRows(
        {"token_ids": pair_ids}, pair_y, [NEGATION], np.zeros(22, int), np.arange(22) // 2
    )
    batches = list(
        make_dataset(ids, np.zeros(30), training=True, epochs=3, pairs=pairs, **batching)
    )
    steps = steps_per_epoch(ids, pairs=pairs, **batching)
    assert len(batches) == 3 * steps
    seen = []
    for x, y in batches:
        tokens, y = x["token_ids"].numpy(), y.numpy()
        if not y[:, 1].any():  # the other rows: label, not the first of a pair
            assert (tokens < 100).all()
            continue
        assert len(y) <= 4 and (y[0::2, 1] == 1).all() and (y[1::2, 1] == 0).all()
        assert (y[0::2, 0] == 1).all() and (y[1::2, 0] == 0).all()
        for first, second in zip(tokens[0::2], tokens[1::2]):
            assert first[0] == second[0] and (second != 0).sum() == (first != 0).sum() + 1
            seen.append(first[0] - 100)
    assert sorted(seen) == sorted(list(range(11)) * 3)
    resumed = list(
        make_dataset(
            ids, np.zeros(30), training=True, epochs=3, first_epoch=2, pairs=pairs, **batching
        )
    )
    for (a, ya), (b, yb) in zip(resumed, batches[2 * steps :]):
        np.testing.assert_array_equal(a["token_ids"], b["token_ids"])


def test_the_pair_term_wants_a_pair_apart_by_the_margin():
    from imdb_sentiment.model import PairedCrossEntropy, members_cross_entropy

    loss = PairedCrossEntropy(margin=2.0)
    # rows: a pair (positive, then negative text) and one other row; one member
    y = tf.constant([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    plain = members_cross_entropy(y, tf.constant([[0.9], [0.1], [0.6]])).numpy()

    def pair_term(p):
        return (
            loss.call(y, tf.constant(p)).numpy() - members_cross_entropy(y, tf.constant(p)).numpy()
        )

    np.testing.assert_allclose(pair_term([[0.9], [0.1], [0.6]])[1:], 0.0, atol=1e-6)
    apart = np.log(0.9 / 0.1) * 2  # log-odds 2.2 and -2.2: apart by 4.4 > 2
    np.testing.assert_allclose(
        pair_term([[0.9], [0.1], [0.6]])[0], np.log1p(np.exp(2 - apart)), rtol=1e-5
    )
    assert pair_term([[0.6], [0.55], [0.6]])[0] > 1.5  # on one side, near each other
    assert plain.shape == (3,)
    assert loss.call(tf.constant([1.0, 0.0]), tf.constant([[0.9], [0.1]])).shape == (2,)


def test_a_pair_cut_between_replicas_adds_no_pair_term():
    from imdb_sentiment.model import PairedCrossEntropy, members_cross_entropy

    # tf.distribute cuts a batch of 3 pairs (6 rows) into 3 rows per replica of two: the first
    # replica's share ends with the first text of a pair whose second text the other one has.
    share = tf.constant([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    p = tf.constant([[0.9], [0.1], [0.6]])
    term = (PairedCrossEntropy(margin=2.0).call(share, p) - members_cross_entropy(share, p)).numpy()
    assert term[0] > 0  # pair 0, both texts here: log1p(exp(2 - 4.4))
    np.testing.assert_allclose(term[1:], 0.0, atol=1e-6)  # not pair 1's first text and row 0


def test_predict_features_returns_input_order():
    class Echo(tf.keras.Model):  # probability = number of real tokens / 100
        def call(self, x):
            return (
                tf.reduce_sum(tf.cast(x["token_ids"] != 0, tf.float32), axis=1, keepdims=True) / 100
            )

    lengths = [5, 50, 1, 20, 7]
    np.testing.assert_allclose(
        predict_features(Echo(), ragged(lengths), batch_size=2)[:, 0], np.array(lengths) / 100
    )


def test_the_fast_preset_trains_one_member_and_flags_still_override():
    from imdb_sentiment.commands.train import parse_args
    from imdb_sentiment.config import Config

    _, fast = parse_args(["--preset", "fast"])
    assert fast == Config(lstm_members=1, epochs=6)
    _, default = parse_args([])
    assert default == Config()
    _, both = parse_args(["--preset", "fast", "--epochs", "2"])
    assert (both.lstm_members, both.epochs) == (1, 2)


class Words:
    """What pair rows need of a text.Vectorizer: a row of ids per row of tokens (each token's id
    is its number after its first letter, so a test can read the rows back)."""

    vocabulary = ["good", "bad", "film", "is"]

    def features(self, tokens):
        ids = tf.strings.to_number(tf.strings.substr(tokens, 1, 3), tf.int32)
        return {"token_ids": ids, "ngram_ids": ids}


def as_lists(rows) -> list[list[int]]:
    return rows.features["token_ids"].to_list()


def test_pair_rows_are_masks_on_one_table_and_pairs_come_side_by_side():
    """Which rows the LSTM and the bag read, and the pairs the pair term sees, all from each
    row's kind and pair id: no position in a list decides."""
    from imdb_sentiment import augment
    from imdb_sentiment.train import lstm_rows

    made = [  # human pairs: the originals, then their edits; negation pairs two by two
        augment.MadeUp(
            HUMAN, [["o0"], ["o1"], ["e0"], ["e1"]], np.array([1, 0, 0, 1]), np.array([0, 1, 0, 1])
        ),
        augment.MadeUp(NEGATION, [["n0"], ["n1"]], np.array([1, 0])),
        augment.MadeUp(augment.ANTONYM, [["a0"], ["a1"], ["a2"]], np.array([0, 1, 0])),
    ]
    rows = PairRows.of(made, Words())
    assert rows.counts() == {"human_pairs": 2, "negation_sentence_pairs": 1, "antonym_reviews": 3}
    twice = rows.repeated(HUMAN, 2)  # each copy of a human pair is a pair of its own
    assert as_lists(twice) == [[0], [1], [0], [1]] * 2 + [[0], [1], [0], [1], [2]]
    side = twice.side_by_side()
    # each copy's pairs, an original beside its edit, then the negation pair; no antonym review
    assert side.labels.tolist() == [1, 0, 0, 1, 1, 0, 0, 1, 1, 0]
    assert as_lists(side) == [[0], [0], [1], [1]] * 2 + [[0], [1]]
    assert (side.pair[0::2] == side.pair[1::2]).all() and len(set(side.pair)) == 5
    in_bag = twice.mask(lambda kind: kind.in_bag(Config()))
    assert in_bag.sum() == 10 and not in_bag[-3:].any()  # antonym reviews teach the LSTM alone
    assert twice.mask(lambda kind: kind.in_bag(Config(antonyms_in_bag=True))).all()
    corpus = type("Corpus", (), {})()
    corpus.train_x = {"token_ids": tf.ragged.constant([[1, 2], [3]])}
    corpus.train_y = np.array([1, 0])
    with_margin = lstm_rows(Config(short_copies=0, pair_margin=1.0), corpus, twice)
    assert len(with_margin.labels) == 2 + 3 and len(with_margin.pairs) == 10  # antonyms apart
    plain = lstm_rows(Config(short_copies=0), corpus, twice)
    assert len(plain.labels) == 2 + 13 and plain.pairs is None


def test_a_new_kind_of_made_up_pair_needs_no_change_outside_augment(monkeypatch):
    """A kind declared in augment.py and made by made_up_pairs reaches the LSTM's and the bag's
    rows and the pair term by its Kind alone."""
    from imdb_sentiment import augment
    from imdb_sentiment.train import lstm_rows

    SWAP = augment.Kind("swap", paired=True, counted_as="swap_pairs", in_bag=lambda cfg: False)
    made_by_augment = augment.made_up_pairs

    def made_up_pairs(*args):
        made, report = made_by_augment(*args)
        return [*made, augment.MadeUp(SWAP, [["s7"], ["t8"]], np.array([1, 0]))], report

    monkeypatch.setattr(augment, "made_up_pairs", made_up_pairs)
    monkeypatch.setattr("imdb_sentiment.train.made_up_pairs", made_up_pairs)

    from imdb_sentiment.train import pair_rows

    corpus = type("Corpus", (), {})()
    corpus.vectorizer = Words()
    corpus.tokens = tf.ragged.constant([["f1", "i2"], ["b3"]])
    corpus.train_x = {"token_ids": tf.ragged.constant([[1, 2], [3]])}
    corpus.train_y = np.array([1, 0])
    cfg = Config(
        made_up_negations=5,
        made_up_antonyms=0,
        word_polarity_min_reviews=1,
        pair_margin=1.0,
        short_copies=0,
    )
    rows, _ = pair_rows(cfg, None, corpus, np.zeros((6, 51), np.float32))
    assert rows.counts()["swap_pairs"] == 1
    assert as_lists(rows.take(rows.mask(lambda kind: not kind.in_bag(cfg)))) == [[7], [8]]
    lstm = lstm_rows(cfg, corpus, rows)
    assert as_lists(lstm.pairs) == [[7], [8]] and lstm.pairs.labels.tolist() == [1, 0]
