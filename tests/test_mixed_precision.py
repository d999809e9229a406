"""A GPU run trains under the mixed_float16 policy. Here a CPU runs scripts/train.py with that
policy set first (conftest.script_command): what the run exports and leaves in its run folder must
be the float32 model a CPU run gives, for the CPUs TF Serving mostly runs on. The run trains two
LSTM members, so their averaging goes through the same path."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import TINY_CONFIG, graph_nodes, graph_ops, run_script, synthetic_reviews, train_tiny
from tensorflow.core.framework import types_pb2

from imdb_sentiment import model as _registers_the_custom_layers  # noqa: F401
from imdb_sentiment.config import Config


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, tiny_csv):
    run = train_tiny(
        tmp_path_factory.mktemp("mixed"), tiny_csv, mixed_precision=True, config={"lstm_members": 2}
    )
    assert "mixed_float16 in training" in run["stderr"]
    parts = json.loads((run["run_dir"] / "metrics.json").read_text())["parts"]
    assert len(parts["lstm_member_val_accuracy"]) == 2
    return run


def half_precision_nodes(version: Path) -> list[str]:
    """Every node of the SavedModel (conftest.graph_nodes) with a float16 type in its attributes."""
    return [
        f"{node.op} {node.name}"
        for node in graph_nodes(version)
        if any(
            a.type == types_pb2.DT_HALF or types_pb2.DT_HALF in a.list.type
            for a in node.attr.values()
        )
    ]


@pytest.mark.slow
def test_the_export_of_a_mixed_precision_run_holds_no_float16_op(mixed):
    assert half_precision_nodes(mixed["version"]) == []


@pytest.fixture(scope="module")
def reference(mixed):
    """The run's weights in a model built in float32, and its vectorizer."""
    from imdb_sentiment.model import build_model
    from imdb_sentiment.runs import load_artifacts

    art = load_artifacts(mixed["run_dir"])
    assert keras.mixed_precision.global_policy().name == "float32"
    glove = art.model.get_layer("glove").embeddings
    model = build_model(art.cfg, np.zeros(glove.shape, np.float32))
    model.set_weights(art.model.get_weights())
    return model, art.vectorizer


@pytest.mark.slow
def test_its_outputs_are_those_of_the_same_weights_in_a_float32_model(mixed, reference):
    from imdb_sentiment.model import logit_model
    from imdb_sentiment.predict import Predictor

    reference, vectorizer = reference
    reviews = synthetic_reviews(64, seed=5).review.tolist()
    ids = vectorizer(reviews)
    predictor = Predictor(mixed["version"])
    np.testing.assert_allclose(
        [p["probability"] for p in predictor.predict(reviews)],
        reference(ids).numpy().ravel(),
        rtol=0,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        predictor.logits(reviews), logit_model(reference)(ids).numpy().ravel(), rtol=0, atol=1e-5
    )


@pytest.mark.slow
def test_its_members_run_as_standard_ops_with_the_same_outputs_across_sub_batches(mixed, reference):
    """Each member's LSTM runs as BlockLSTMV2 in length-sorted sub-batches of export.SUB_BATCH."""
    import tensorflow as tf

    from imdb_sentiment.export import SUB_BATCH

    reference, vectorizer = reference
    ops = graph_ops(mixed["version"])
    assert "BlockLSTMV2" in ops
    assert not ops - set(dir(tf.raw_ops)), "TF Serving runs standard ops only"
    serve = tf.saved_model.load(str(mixed["version"])).signatures["serving_default"]
    reviews = synthetic_reviews(2 * SUB_BATCH + 3, seed=6).review.tolist()
    expected = reference(vectorizer(reviews)).numpy().ravel()
    for n in (1, 2, SUB_BATCH, SUB_BATCH + 1, 2 * SUB_BATCH + 3):
        served = serve(review=tf.constant(reviews[:n]))["probability"].numpy()
        np.testing.assert_allclose(served, expected[:n], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_a_mixed_precision_run_folder_evaluates_reports_and_explains_like_any_other(
    mixed, tiny_csv, tmp_path
):
    run = mixed["run_dir"]
    assert "mixed_" not in json.dumps(keras.saving.load_model(run / "model.keras").get_config())
    proc = run_script("evaluate.py", run, "--data", tiny_csv, "--splits", "val", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    trained = json.loads((run / "metrics.json").read_text())
    assert evaluation["val"]["accuracy"] == trained["val"]["accuracy"]
    assert evaluation["val"]["roc_auc"] == pytest.approx(trained["val"]["roc_auc"], abs=1e-9)
    assert (tmp_path / "report.md").exists() and (run / "report.md").exists()
    proc = run_script(
        "predict.py", "--model", mixed["version"], "--explain", "a wonderful film, not dull at all"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pushed towards positive: " in proc.stdout and "wonderful" in proc.stdout


@pytest.fixture
def mixed_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_the_checkpoint_holds_the_loss_scale_and_its_counter(mixed_policy, tmp_path):
    """A tiny run never changes its loss scale (it grows every 2,000 steps, and halves on an
    overflow), so the kill-and-resume test could not see it lost: set it here and read it back."""
    from imdb_sentiment.model import build_model, compile_model, lstm_model
    from imdb_sentiment.resume import Checkpoint

    cfg = Config.from_dict(TINY_CONFIG)

    def fresh():
        return compile_model(lstm_model(build_model(cfg, np.ones((50, 8), np.float32))), cfg)

    model = fresh()
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)  # as training does; Checkpoint.restore does it too
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    optimizer.dynamic_scale.assign(1024.0)
    optimizer.step_counter.assign(7)
    early = keras.callbacks.EarlyStopping()
    early.on_train_begin()  # sets the state a checkpoint records
    saved = Checkpoint(tmp_path / "checkpoint.npz", early)
    saved.set_model(model)
    saved.on_epoch_end(0)
    restored = fresh()
    assert Checkpoint(saved.path, keras.callbacks.EarlyStopping()).restore(restored) == 1
    assert float(restored.optimizer.dynamic_scale.numpy()) == 1024.0
    assert int(restored.optimizer.step_counter.numpy()) == 7


def test_the_served_model_is_float32_and_off_cudnn_wherever_it_is_traced(mixed_policy):
    """Only a GPU traces the cuDNN op, which no CPU can run; here: the layers the export traces."""
    from imdb_sentiment.model import as_float32, build_model

    cfg = Config.from_dict(TINY_CONFIG)
    model = build_model(cfg, np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32))
    served = as_float32(model, cudnn=False)
    [bidirectional] = [x for x in served.layers if isinstance(x, keras.layers.Bidirectional)]
    lstms = [bidirectional.forward_layer, bidirectional.backward_layer]
    assert all(lstm.use_cudnn is False and lstm.dtype_policy.name == "float32" for lstm in lstms)
    assert {layer.dtype_policy.name for layer in served.layers} == {"float32"}
    ids = {
        "token_ids": np.array([[2, 3, 4, 0], [5, 6, 0, 0]]),
        "ngram_ids": np.array([[2, 3], [4, 0]]),
    }
    keras.mixed_precision.set_global_policy("float32")
    reference = build_model(cfg, np.zeros((50, 8), np.float32))
    reference.set_weights(model.get_weights())
    np.testing.assert_allclose(served(ids).numpy(), reference(ids).numpy(), rtol=0, atol=1e-6)
