"""The product as a user meets it: train.py -> run folder + SavedModel -> predict.py / TF Serving
loader."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import graph_ops, run_main, run_script, synthetic_reviews

from imdb_sentiment.config import Config


def test_run_folder_holds_config_logs_and_metrics(trained):
    run = trained["run_dir"]
    for name in (
        "config.json",
        "data_report.json",
        "history.csv",
        "metrics.json",
        "vocab.txt",
        "model.keras",
    ):
        assert (run / name).stat().st_size > 0, name
    assert any((run / "tensorboard").rglob("events.out.tfevents*"))
    cfg = Config.load(run / "config.json")
    assert cfg.lstm_units == 8 and cfg.seed == 7
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("val", "test"):
        assert set(metrics[split]) >= {
            "accuracy",
            "precision",
            "recall",
            "f1",
            "roc_auc",
            "confusion_matrix",
        }
    assert metrics["test"]["n"] == 160
    # The synthetic sentiment words are easy: a model that learned nothing would sit near 0.5.
    assert metrics["test"]["accuracy"] > 0.85
    assert "accuracy" in trained["stdout"] and "roc_auc" in trained["stdout"]
    # --compare-baseline: TF-IDF + logistic regression on the same rows, C chosen on validation
    assert metrics["baseline"]["test"]["n"] == 160 and metrics["baseline"]["C"] in (
        1,
        3,
        10,
        30,
        100,
    )
    assert "baseline test" in trained["stdout"] and "model test" in trained["stdout"]


def test_metrics_give_each_parts_accuracy_alone_on_each_split(trained):
    metrics = json.loads((trained["run_dir"] / "metrics.json").read_text())
    for split in ("val", "test"):
        assert set(metrics[split]["parts"]) == {"lstm", "bag"}
        assert all(0.5 < acc <= 1 for acc in metrics[split]["parts"].values()), split
    # The same figures training measured on validation, by Keras for the LSTM and by
    # scikit-learn for the bag: the parts are read from the model that was trained.
    n = metrics["val"]["n"]
    assert abs(metrics["val"]["parts"]["lstm"] - metrics["parts"]["lstm_val_accuracy"]) <= 1 / n
    assert abs(metrics["val"]["parts"]["bag"] - metrics["parts"]["bag_val_accuracy"]) <= 1 / n


def test_the_blend_is_fitted_on_validation_reviews_their_cuts_and_pairs(
    trained, tiny_csv, tiny_pairs
):
    from imdb_sentiment import counterfactuals, data, text
    from imdb_sentiment.bag import fit_blend
    from imdb_sentiment.features import predict_features
    from imdb_sentiment.model import part_logits
    from imdb_sentiment.runs import load_artifacts
    from imdb_sentiment.short import CUTS, cut_texts

    art = load_artifacts(trained["run_dir"])
    assert art.cfg.blend_on_cuts and art.cfg.blend_pair_weight
    splits = data.load(tiny_csv, art.cfg)
    val = splits.val
    # the tiny pairs' originals are the first training-split reviews, some of them validation's
    pairs = counterfactuals.load(tiny_pairs, splits, art.cfg).val
    assert len(pairs) and set(pairs.original) <= set(val.review)
    pair_texts, pair_y = pairs.rows()
    texts = val.review.tolist() + cut_texts(val.review) + pair_texts
    logits = predict_features(
        part_logits(art.model), art.vectorizer.features(text.tokenize_corpus(texts))
    )
    y, n, cut = val.label.to_numpy(), len(val), len(val) * (len(CUTS) + 1)
    w = art.cfg.blend_pair_weight
    rows = np.concatenate([logits[:cut], *[logits[cut:]] * w])
    weights, bias = fit_blend(
        rows[:, 0], rows[:, 1], np.concatenate([np.tile(y, len(CUTS) + 1), *[pair_y] * w])
    )
    blend = json.loads((trained["run_dir"] / "metrics.json").read_text())["parts"]["blend"]
    assert [blend["lstm"], blend["bag"], blend["bias"]] == pytest.approx([*weights, bias], abs=1e-4)
    whole_only, _ = fit_blend(logits[:n, 0], logits[:n, 1], y)
    assert np.abs(whole_only - weights).max() > 1e-2  # the cuts and pairs made these weights
    no_pairs, _ = fit_blend(logits[:cut, 0], logits[:cut, 1], np.tile(y, len(CUTS) + 1))
    assert np.abs(no_pairs - weights).max() > 1e-3


def test_export_is_a_numbered_version_with_info(trained):
    version = trained["version"]
    assert (
        version.name == "1"
        and (version / "saved_model.pb").exists()
        and (version / "variables").is_dir()
    )
    assert [p.name for p in trained["models"].iterdir()] == ["1"]  # no temporary folder left behind
    info = json.loads((version / "model_info.json").read_text())
    assert info["config"]["lstm_units"] == 8 and info["vocabulary_size"] > 20
    assert info["embedding"]["coverage"] > 0.7 and len(info["data"]["checksum"]) == 64
    assert info["packages"]["tensorflow"].startswith("2.")
    assert info["metrics"]["test"]["accuracy"] > 0.85


def predict_cli(*args, input=None, process=False):
    """predict.py's output lines; the command is run in this process unless `process` is set,
    for what only a process of its own shows (threads per op are set before TensorFlow starts)."""
    if process:
        proc = run_script("predict.py", *args, input=input)
    else:
        from imdb_sentiment.commands.predict import main

        proc = run_main(main, *args, input=input)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.slow
def test_predict_cli_labels_texts_in_order_whatever_its_threads_per_op(trained):
    texts = ["A wonderful, moving and brilliant film.", "Awful, boring and terrible. The worst."]
    out = predict_cli("--model", trained["models"], *texts, process=True)
    assert [o["label"] for o in out] == ["positive", "negative"]
    assert out[0]["probability"] > 0.5 > out[1]["probability"]
    # One thread per op is the default; TensorFlow's own choice gives the same answers.
    threads = ("--intra-op-threads", "0")
    assert predict_cli("--model", trained["models"], *threads, *texts, process=True) == out


def test_predict_cli_reads_txt_csv_jsonl_and_stdin_and_keeps_blank_lines(trained, tmp_path):
    texts = ["superb and delightful", "", "dull, pointless, horrible", "great great great"]
    (tmp_path / "r.txt").write_text("\n".join(texts) + "\n")
    (tmp_path / "r.jsonl").write_text("\n".join(json.dumps({"review": t}) for t in texts) + "\n")
    synthetic_reviews(0, 0).reindex(range(4)).assign(review=texts).to_csv(
        tmp_path / "r.csv", index=False
    )
    expected = predict_cli("--model", trained["version"], *texts)
    for name in ("r.txt", "r.jsonl", "r.csv"):
        got = predict_cli("--model", trained["models"], "--file", tmp_path / name)
        assert got == expected, name
    assert predict_cli("--model", trained["models"], input="\n".join(texts) + "\n") == expected


def test_empty_and_one_megabyte_reviews_give_valid_results(trained, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text(("boring " * 150_000)[:1_000_000] + "\n\n")
    out = predict_cli("--model", trained["models"], "--file", big)
    assert len(out) == 2
    for o in out:
        assert o["label"] in ("positive", "negative") and 0.0 <= o["probability"] <= 1.0
    assert out[0]["label"] == "negative"


def test_predict_errors_are_clear(trained, tmp_path):
    from imdb_sentiment.commands.predict import main  # as scripts/predict.py runs it

    proc = run_main(main, "--model", tmp_path / "none", "text")
    assert (
        proc.returncode == 2
        and "no exported model" in proc.stderr
        and "Traceback" not in proc.stderr
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"review": "ok"}\n{oops\n')
    proc = run_main(main, "--model", trained["models"], "--file", bad)
    assert proc.returncode == 2 and "bad.jsonl:2" in proc.stderr
    proc = run_main(main, "--model", trained["models"], "--intra-op-threads", "-1", "x")
    assert proc.returncode == 2 and "--intra-op-threads must be 0 or more" in proc.stderr


def test_predict_card_prints_the_versions_model_card_and_reads_no_review(trained):
    from imdb_sentiment.commands.predict import main  # as scripts/predict.py runs it

    card = (trained["version"] / "model_card.md").read_text()
    for model in (trained["version"], trained["models"]):  # a version, or the newest of a folder
        proc = run_main(main, "--model", model, "--card", input="A review on stdin.\n")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout == card  # exactly the card: no prediction line
    proc = run_main(main, "--help")
    assert "--card" in proc.stdout and "model card" in " ".join(proc.stdout.split())
    proc = run_main(main, "--card", "--server", "http://localhost:8501")
    assert proc.returncode == 2 and "--card reads the local model" in proc.stderr


def test_tensorflow_alone_loads_the_export_and_agrees_with_predict_py(trained):
    texts = [
        "A wonderful, moving film.",
        "Terrible<br /><br />and dull.",
        "",
        "the plot and the cast",
    ]
    expected = [o["probability"] for o in predict_cli("--model", trained["models"], *texts)]
    code = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        serve = tf.saved_model.load({str(trained["version"])!r}).signatures["serving_default"]
        out = serve(review=tf.constant({texts!r}))
        assert "imdb_sentiment" not in sys.modules
        labels = [l.decode() for l in out["label"].numpy()]
        print(json.dumps([out["probability"].numpy().tolist(), labels]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    probs, labels = json.loads(proc.stdout.splitlines()[-1])
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert labels == [("positive" if p >= 0.5 else "negative") for p in probs]


def test_saved_model_cli_shows_a_string_input(trained):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tensorflow.python.tools.saved_model_cli",
            "show",
            "--dir",
            str(trained["version"]),
            "--all",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sig = proc.stdout.split("signature_def['serving_default']")[1]
    assert "inputs['review'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in sig
    assert "outputs['probability']" in sig and "DT_FLOAT" in sig and "outputs['label']" in sig


def test_exported_graph_tokens_equal_training_tokens(trained):
    import tensorflow as tf

    from imdb_sentiment import text

    raw = [
        "Great<br /><br />film &amp; <i>superb</i> cast!",
        "It wasn't &quot;bad&quot; but dull",
        "",
    ]
    loaded = tf.saved_model.load(str(trained["version"]))
    served = loaded.signatures["token_ids"](review=tf.constant(raw))
    vocab = (trained["run_dir"] / "vocab.txt").read_text().split("\n")[:-1]
    vec = text.Vectorizer.from_config(vocab, Config.load(trained["run_dir"] / "config.json"))
    training = vec.features(text.tokenize_corpus(raw))  # training reads raw text too (data.clean)
    assert set(served) == set(training) == {"token_ids", "ngram_ids"}
    for name in training:
        np.testing.assert_array_equal(served[name].numpy(), training[name].to_tensor().numpy())


def test_graph_uses_only_standard_tensorflow_ops(trained):
    """TF Serving has TensorFlow's standard ops and nothing else (no tensorflow-text, no custom
    ops)."""
    import tensorflow as tf

    ops = graph_ops(trained["version"])
    assert {
        "StaticRegexReplace",
        "StringSplitV2",
        "LookupTableFindV2",
    } <= ops  # preprocessing is in the graph
    assert not ops - set(dir(tf.raw_ops)), f"non-standard ops: {ops - set(dir(tf.raw_ops))}"


def test_saved_model_cli_run_on_raw_strings_in_a_fresh_process(trained):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tensorflow.python.tools.saved_model_cli",
            "run",
            "--dir",
            str(trained["version"]),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            "review=['superb and delightful film', 'awful boring worst film']",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout[proc.stdout.index("Result for output key label") :]
    assert "[b'positive' b'negative']" in out
