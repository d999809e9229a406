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
    _, model = small_model(lstm_layers=2)
    found = list(lstms(model))
    assert len(found) == 4  # 2 layers x 2 directions
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
