import keras
import numpy as np

from imdb_sentiment.config import Config
from imdb_sentiment.model import MaskedMaxMeanPooling, build_model


def small_model(**kw):
    cfg = Config(lstm_units=4, **kw)
    return cfg, build_model(cfg, np.random.default_rng(0).normal(size=(20, 50)).astype("float32"))


def lstms(model):
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.LSTM):
            yield layer


def test_lstm_layers_are_eligible_for_cudnn():
    cfg, model = small_model(lstm_layers=2)
    found = list(lstms(model))
    assert len(found) == 4 * cfg.lstm_members  # 2 layers x 2 directions per member
    for layer in found:
        c = layer.get_config()
        assert c["activation"] == "tanh" and c["recurrent_activation"] == "sigmoid"
        assert c["recurrent_dropout"] == 0 and not c["unroll"] and c["use_bias"]


def test_embedding_is_glove_and_frozen_by_default():
    cfg, model = small_model()
    emb = model.get_layer("glove")
    assert not emb.trainable and emb.mask_zero
    assert all("glove" not in w.path for w in model.trainable_weights)
    assert (
        build_model(Config(lstm_units=4, train_embeddings=True), np.zeros((20, 50), "float32"))
        .get_layer("glove")
        .trainable
    )


def test_padding_does_not_change_the_prediction():
    for _, model in (small_model(ngram_buckets=0), small_model(ngram_buckets=64)):
        x = {"token_ids": np.array([[5, 6, 7]], "int32"), "ngram_ids": np.array([[3, 9]], "int32")}
        padded = {
            "token_ids": np.array([[5, 6, 7, 0, 0, 0, 0, 0]], "int32"),
            "ngram_ids": np.array([[3, 9, 0, 0]], "int32"),
        }
        names = [i.name for i in model.inputs]

        def pick(d):
            return {k: v for k, v in d.items() if k in names}

        np.testing.assert_allclose(model(pick(x)).numpy(), model(pick(padded)).numpy(), rtol=1e-5)


def test_masked_pooling_ignores_padded_steps():
    x = np.array([[[1.0], [-0.5], [0.9]]], "float32")
    out = MaskedMaxMeanPooling()(x, mask=np.array([[True, True, False]])).numpy()
    np.testing.assert_allclose(out, [[1.0, 0.25]])


def test_lstm_members_learn_on_their_own_losses_and_the_part_averages_their_log_odds():
    from imdb_sentiment.model import compile_model, lstm_model, recurrent_encoders

    _, deep = small_model(lstm_members=3, lstm_layers=2)
    firsts = [m["forward"] for m in recurrent_encoders(deep)]
    # three members' first layers, reading the 50-d vectors (the second layers read 2 x 4 units)
    assert len(list(lstms(deep))) == 12 and len({id(f) for f in firsts}) == 3
    assert all(f.cell.kernel.shape[0] == 50 for f in firsts)
    cfg, model = small_model(lstm_members=3, ngram_buckets=0, dropout=0.0)
    train = compile_model(lstm_model(model), cfg)
    ids = np.random.default_rng(1).integers(2, 20, size=(16, 6)).astype("int32")
    labels = (ids[:, 0] > 10).astype("float32")
    members = train.predict({"token_ids": ids}, verbose=0)
    assert members.shape == (16, 3) and np.ptp(members, axis=1).max() > 1e-3  # own initial weights
    member_logits = np.log(members) - np.log1p(-members)
    part = keras.Model(model.inputs, model.get_layer("lstm_logit").output)
    np.testing.assert_allclose(
        part.predict({"token_ids": ids}, verbose=0)[:, 0], member_logits.mean(1), atol=1e-4
    )
    # The accuracy early stopping watches is the average's, not the members' mean accuracy.
    loss, accuracy = train.evaluate({"token_ids": ids}, labels, verbose=0)
    assert accuracy == np.mean((member_logits.mean(1) > 0) == (labels > 0.5))
    # Each member is fitted on its own loss: the loss is the members' mean cross-entropy, not the
    # cross-entropy of their average, which would train them as one wide model.
    own = -np.mean(labels[:, None] * np.log(members) + (1 - labels[:, None]) * np.log1p(-members))
    np.testing.assert_allclose(loss, own, rtol=1e-4)
    before = [w.numpy().copy() for w in train.trainable_weights]
    train.fit({"token_ids": ids}, labels, epochs=1, batch_size=16, verbose=0)
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, train.trainable_weights))
