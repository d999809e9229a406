"""The exported signatures run a batch in length-sorted sub-batches: the outputs are the model's
own, review by review, in input order, whatever the batch's size and lengths."""

import random

import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_ops, synthetic_reviews
from tensorflow.core.protobuf import saved_model_pb2

from imdb_sentiment.export import SUB_BATCH, WARM_UP_FILE, WARM_UP_REVIEWS, warm_up_requests
from imdb_sentiment.model import logit_model
from imdb_sentiment.runs import load_artifacts


@pytest.fixture(scope="module")
def pool(trained):
    """Reviews of very different lengths (empty, one word, far beyond max_len) in random order,
    each with the Keras model's probability and log-odds for that review alone."""
    rng = random.Random(3)
    long_reviews = [
        " ".join(rng.choice(["superb", "dull", "the", "film", "plot"]) for _ in range(n))
        for n in (200, 700, 3000)
    ]
    reviews = synthetic_reviews(140, seed=5).review.tolist() + long_reviews
    reviews += ["", "", "wonderful", "awful<br /><br />", "<br />"]
    rng.shuffle(reviews)
    a = load_artifacts(trained["version"])
    logits = logit_model(a.model)
    alone = [a.vectorizer([r]) for r in reviews]
    probability = np.array([float(a.model(x, training=False)[0, 0]) for x in alone])
    logit = np.array([float(logits(x, training=False)[0, 0]) for x in alone])
    assert max(map(len, reviews)) > 100 * min(map(len, [r for r in reviews if r]))
    return reviews, probability, logit


@pytest.fixture(scope="module")
def signatures(trained):
    return tf.saved_model.load(str(trained["version"])).signatures


@pytest.mark.parametrize("size", [1, SUB_BATCH - 1, SUB_BATCH, SUB_BATCH + 1, None])
def test_served_outputs_are_each_reviews_own_in_input_order(pool, signatures, size):
    reviews, probability, logit = pool
    for start in range(0, len(reviews), size or len(reviews)):
        rows = slice(start, start + (size or len(reviews)))
        batch = tf.constant(reviews[rows])
        served = signatures["serving_default"](review=batch)
        np.testing.assert_allclose(served["probability"].numpy(), probability[rows], atol=1e-5)
        labels = np.where(probability[rows] >= 0.5, b"positive", b"negative")
        assert list(served["label"].numpy()) == list(labels)
        got = signatures["logit"](review=batch)["logit"].numpy()
        np.testing.assert_allclose(got, logit[rows], atol=1e-5)
        if size is None:
            break


def test_an_empty_batch_gives_empty_outputs(signatures):
    served = signatures["serving_default"](review=tf.constant([], tf.string))
    assert served["probability"].shape == [0] and served["label"].shape == [0]
    assert signatures["logit"](review=tf.constant([], tf.string))["logit"].shape == [0]


def test_the_export_carries_the_warm_up_request_tf_serving_runs(trained, signatures):
    """assets.extra/tf_serving_warmup_requests: a TFRecord of PredictionLogs (TF Serving's
    SavedModel warm-up), here one Predict request of serving_default that the export answers."""
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(str(trained["version"] / WARM_UP_FILE)))
    assert len(records) == 1
    request = prediction_log_pb2.PredictionLog.FromString(records[0].numpy()).predict_log.request
    assert request.model_spec.signature_name == "serving_default"
    assert list(request.inputs) == ["review"]
    reviews = tf.make_ndarray(request.inputs["review"])
    assert reviews.shape == (256,) and list(reviews) == WARM_UP_REVIEWS
    assert warm_up_requests(trained["version"]) == (str(WARM_UP_FILE), [WARM_UP_REVIEWS])
    served = signatures["serving_default"](review=tf.constant(reviews))["probability"].numpy()
    assert served.shape == (256,) and np.all((served >= 0) & (served <= 1))


def test_a_version_without_a_warm_up_file_is_warmed_up_on_the_built_in_reviews(tmp_path):
    assert warm_up_requests(tmp_path) == ("built-in reviews", [WARM_UP_REVIEWS])


def _loop_depth(functions: dict, nodes, seen: frozenset = frozenset()) -> int:
    """How deep While loops nest among these nodes and in every function they call."""
    deepest = 0
    for node in nodes:
        called = {v.func.name for v in node.attr.values()} & set(functions) - seen
        inner = max(
            (_loop_depth(functions, functions[f].node_def, seen | {f}) for f in called), default=0
        )
        deepest = max(deepest, inner + (node.op in ("While", "StatelessWhile")))
    return deepest


def test_serving_runs_the_lstm_as_one_op_inside_a_loop_over_sub_batches(trained):
    """The loop over sub-batches is the only loop: each LSTM runs as one BlockLSTMV2, not as
    Keras's loop over time steps."""
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((trained["version"] / "saved_model.pb").read_bytes())
    graph = sm.meta_graphs[0].graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    for signature, output in (("serving_default", "probability"), ("logit", "logit")):
        tensor = sm.meta_graphs[0].signature_def[signature].outputs[output].name
        node = next(n for n in graph.node if n.name == tensor.split(":")[0])
        assert _loop_depth(functions, [node]) == 1, signature
    assert "BlockLSTMV2" in graph_ops(trained["version"])


@pytest.mark.parametrize(
    "shape",
    [
        {},
        {"lstm_layers": 2, "lstm_members": 3, "ngram_buckets": 64},
        {"pooling": "last"},
        {"pooling": "last", "bidirectional": False, "lstm_layers": 2},
    ],
    ids=["default", "two layers, three members, a bag", "last state", "one direction, last state"],
)
def test_the_kernel_lstm_gives_the_masked_keras_layers_outputs(shape):
    """kernel_lstms against the Keras model it copies, on ids of every length from 0 (all padding)
    to the longest, in one padded batch."""
    from imdb_sentiment.config import Config
    from imdb_sentiment.export import kernel_lstms
    from imdb_sentiment.model import build_model

    rng = np.random.default_rng(0)
    cfg = Config(lstm_units=8, **{"ngram_buckets": 0, **shape})
    model = logit_model(build_model(cfg, rng.normal(size=(50, 6)).astype("float32")))
    for w in model.weights:  # trained-looking weights: random, large enough to saturate gates
        w.assign(rng.normal(scale=1.5, size=w.shape).astype("float32"))
    lengths = np.array([0, 1, 2, 7, 30, 30, 12, 29])
    ids = np.where(np.arange(30) < lengths[:, None], rng.integers(1, 50, (8, 30)), 0)
    x = {"token_ids": ids, "ngram_ids": rng.integers(2, 64, (8, 5))}
    x = {i.name: x[i.name] for i in model.inputs}
    fast = kernel_lstms(model)
    # one copy of every weight in an export: GloVe, the LSTMs, the bag and the blend are shared
    assert {id(w) for w in fast.weights} == {id(w) for w in model.weights}
    np.testing.assert_allclose(fast(x).numpy(), model(x).numpy(), rtol=0, atol=1e-5)
