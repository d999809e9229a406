import numpy as np
import tensorflow as tf

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
    cfg = Config(batch_size=4, max_len=100, epochs=3)
    lengths = np.random.default_rng(0).integers(1, 100, size=53)
    ids = ragged(lengths)
    batches = list(make_dataset(ids, np.arange(53), cfg, training=True))
    steps = steps_per_epoch(ids, cfg)
    assert len(batches) == 3 * steps
    epochs = [
        np.concatenate([y for _, y in batches[e * steps : (e + 1) * steps]]) for e in range(3)
    ]
    for order in epochs:  # every review once per epoch, in a new order each epoch
        assert sorted(order) == list(range(53))
    assert len({tuple(o) for o in epochs}) == 3
    # The order depends on the epoch's number only: a run resumed at epoch 2 gets epoch 2's batches.
    resumed = list(make_dataset(ids, np.arange(53), cfg, training=True, first_epoch=2))
    np.testing.assert_array_equal(np.concatenate([y for _, y in resumed]), epochs[2])
    for x, _ in batches:  # each batch is padded only to its own longest review, within one bucket
        real = (x["token_ids"].numpy() != 0).sum(axis=1)
        assert x["token_ids"].shape[1] == real.max() and real.max() - real.min() < 25


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
