"""Pretraining: unlabelled reviews found beside the data, language models whose LSTMs read as the
classifier's do, an encoder the classifier really starts from, refused when it does not fit, and a
killed pretraining that resumes to the weights of an uninterrupted one."""

import json
import signal
import tarfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import TINY_CONFIG, run_script, synthetic_reviews
from test_faults import kill_when, script

from imdb_sentiment import data, pretrain
from imdb_sentiment.config import Config
from imdb_sentiment.model import build_model, recurrent_encoders

# The classifiers here read each word's polarity beside GloVe, as the default does.
PRETRAIN = {
    "pretrain_epochs": 2,
    "pretrain_batch_size": 32,
    "pretrain_sampled": 64,
    "word_polarity_min_reviews": 2,
}


def unlabelled_reviews(n=300):
    return synthetic_reviews(n, seed=3).review


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Labelled CSV and, beside it, unlabelled reviews under the release's CSV name; a config."""
    d = tmp_path_factory.mktemp("pretrain_data")
    labelled = pd.concat(
        [
            synthetic_reviews(480, seed=1).assign(split="train"),
            synthetic_reviews(160, seed=2).assign(split="test"),
        ]
    )
    labelled.to_csv(d / "tiny.csv.gz", index=False)
    unlabelled = pd.DataFrame({"review": unlabelled_reviews(), "id": range(300)})
    unlabelled.to_csv(d / data.UNSUP_CSV, index=False)
    (d / "cfg.json").write_text(json.dumps({**TINY_CONFIG, **PRETRAIN, "epochs": 2}))
    return d


@pytest.fixture(scope="module")
def encoder(folder):
    """One pretraining through scripts/pretrain.py, into the cache folder where train.py looks."""
    cache = folder / "cache"
    proc = run_script(
        "pretrain.py",
        "--data",
        folder / "tiny.csv.gz",
        "--config",
        folder / "cfg.json",
        "--cache-dir",
        cache,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [path] = (cache / "encoders").iterdir()
    return path


def test_unlabelled_reviews_are_found_beside_each_kind_of_data(tmp_path):
    texts = ["An <i>odd</i> film.", "Second one.", "   "]
    root = tmp_path / "aclImdb"
    for split, label, name, text in [
        ("train", "pos", "0_9", "good"),
        ("test", "neg", "0_2", "bad"),
    ]:
        (root / split / label).mkdir(parents=True)
        (root / split / label / f"{name}.txt").write_text(text)
    (root / "train" / "unsup").mkdir()
    for i, t in enumerate(texts):  # ids out of file-name order: reading follows the ids
        (root / "train" / "unsup" / f"{[10, 2, 5][i]}_0.txt").write_text(t)
    tar = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(tar, "w:gz") as tf_:
        tf_.add(root, arcname="aclImdb")

    by_id = ["Second one.", texts[0]]  # raw as clean() keeps the labelled texts, no blank
    assert data.find_unlabelled(tmp_path) == root
    assert data.read_unlabelled(root) == by_id
    assert data.find_unlabelled(tar) == tar and data.read_unlabelled(tar) == by_id
    for labelled in (data.read_reviews(root), data.read_reviews(tar)):  # without the unlabelled
        assert sorted(labelled.review) == ["bad", "good"]
    csv = tmp_path / "IMDB Dataset.csv"
    csv.write_text("review,sentiment\nfine,positive\n")
    assert data.find_unlabelled(csv) is None
    pd.DataFrame({"review": texts, "id": [0, 1, 2]}).to_csv(tmp_path / data.UNSUP_CSV, index=False)
    assert data.find_unlabelled(csv) == tmp_path / data.UNSUP_CSV
    assert data.read_unlabelled(tmp_path / data.UNSUP_CSV) == by_id[::-1]
    assert data.find_unlabelled(csv, given=root) == root
    with pytest.raises(data.UserError, match="--unlabelled"):
        data.find_unlabelled(csv, given=tmp_path / "missing")


def test_corpus_never_holds_validation_test_or_held_out_reviews(folder):
    cfg = Config(**{**TINY_CONFIG, **PRETRAIN})
    splits = data.load(folder / "tiny.csv.gz", cfg)
    leaked = [splits.val.review[0], splits.test.review[0]]
    texts, held_out, counts = pretrain.corpus(splits, list(unlabelled_reviews()) + leaked, cfg)
    assert counts["unlabelled_dropped_as_validation_or_test"] == 2
    assert not set(texts) & (set(splits.val.review) | set(splits.test.review) | set(held_out))
    assert set(held_out) < set(splits.train.review)
    assert len(held_out) == round(0.02 * len(splits.train))
    assert len(texts) == 300 + len(splits.train) - len(held_out)


def test_backward_language_model_reads_reviews_as_the_classifier_backward_layer_does():
    """Keras' backward layer (go_backwards) on a right-padded, masked batch reads each review's real
    tokens last to first, as the language model does on tf.reverse_sequence: with the same weights,
    the classifier's outputs at each real step are the language model's at the mirrored step."""
    cfg = Config(lstm_units=4, lstm_members=1, ngram_buckets=0, pooling="max_mean")
    matrix = np.random.default_rng(0).normal(size=(12, 50)).astype(np.float32)
    lm = pretrain.LanguageModels(cfg, matrix)
    ids = tf.constant([[2, 3, 4, 5, 6], [7, 8, 9, 0, 0], [10, 0, 0, 0, 0]], tf.int32)
    lm({"token_ids": ids})
    classifier = build_model(cfg, matrix)
    (layers,) = recurrent_encoders(classifier)
    for lstm, direction in zip(lm.lstms, pretrain.DIRECTIONS):
        layers[direction].set_weights(lstm.get_weights())
    bidirectional = next(
        la for la in classifier.layers if isinstance(la, keras.layers.Bidirectional)
    )
    both = keras.Model(classifier.inputs, bidirectional.output)({"token_ids": ids}).numpy()
    forward, backward = (h.numpy() for h in lm.hidden(ids))
    for row, n in enumerate([5, 3, 1]):
        np.testing.assert_allclose(both[row, :n, :4], forward[row, :n], atol=1e-6)
        np.testing.assert_allclose(both[row, :n, 4:], backward[row, :n][::-1], atol=1e-6)
    assert not np.allclose(backward[0], forward[0], atol=1e-3)  # the two directions do differ


@pytest.mark.slow
def test_pretrained_encoder_is_found_then_fine_tuned_and_exported(folder, encoder, tmp_path):
    proc = run_script(
        "train.py",
        "--data",
        folder / "tiny.csv.gz",
        "--config",
        folder / "cfg.json",
        "--pretrain",
        "--cache-dir",
        folder / "cache",
        "--run-dir",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "models",
        "--skip-test",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "made with these settings and data; using it" in proc.stderr  # not pretrained again
    assert f"the LSTM starts from the encoder in {encoder}" in proc.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["encoder"]["path"] == str(encoder.resolve())
    assert metrics["encoder"]["corpus"]["unlabelled"] == 300
    history = pd.read_csv(encoder / "history.csv")
    assert {"loss", "val_loss", "forward_loss", "seconds"} <= set(history.columns)
    assert len(history) == 2
    info = json.loads((tmp_path / "models" / "1" / "model_info.json").read_text())
    assert info["metrics"]["encoder"]["key"] == encoder.name

    from imdb_sentiment.predict import Predictor

    good, bad = Predictor(tmp_path / "models").predict(
        ["a wonderful excellent film", "an awful boring film"]
    )
    assert good["probability"] > bad["probability"]


def fine_tune(folder: Path, cfg: Path, encoder: Path, run_dir: Path):
    """train.py on the tiny data from the given encoder, validation only, no export."""
    flags = ("--data", folder / "tiny.csv.gz", "--config", cfg, "--pretrained", encoder)
    return run_script("train.py", *flags, "--run-dir", run_dir, "--no-export", "--skip-test")


@pytest.mark.parametrize("polarity", [2, 0], ids=["with word polarity", "GloVe alone"])
@pytest.mark.slow
def test_the_classifier_starts_from_the_encoder_weights(folder, encoder, tmp_path, polarity):
    """At a learning rate of 0, fine-tuning leaves the LSTM where it started: at the encoder. Each
    member of an ensemble starts there. The encoder read GloVe alone: a classifier that reads the
    polarity column too has one more input row, which only fine-tuning sets."""
    settings = {**TINY_CONFIG, **PRETRAIN, "epochs": 1, "learning_rate": 0.0, "lstm_members": 2}
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**settings, "word_polarity_min_reviews": polarity}))
    proc = fine_tune(folder, cfg, encoder, tmp_path / "run")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", safe_mode=True)
    members = recurrent_encoders(model)
    assert len(members) == 2
    with np.load(encoder / pretrain.ENCODER_FILE) as z:
        for member in members:
            for direction, layer in member.items():
                for w in layer.weights:
                    got, pretrained = w.numpy(), z[f"{direction}_{w.name}"]
                    if polarity and w.name == "kernel":
                        assert got.shape == (len(pretrained) + 1, pretrained.shape[1])
                        assert np.abs(got[-1]).max() > 0  # the polarity row, as initialised
                        got = got[:-1]
                    np.testing.assert_array_equal(got, pretrained)


@pytest.mark.slow
def test_an_encoder_that_does_not_fit_is_refused(folder, encoder, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps(
            {
                **TINY_CONFIG,
                **PRETRAIN,
                "lstm_units": 16,
                "min_count": 2,
                "epochs": 1,
            }
        )
    )
    proc = fine_tune(folder, cfg, encoder, tmp_path / "run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert str(encoder) in proc.stderr and "lstm_units is 16 here and 8" in proc.stderr
    assert "the vocabulary differs" in proc.stderr
    proc = run_script(
        "train.py",
        "--data",
        folder / "tiny.csv.gz",
        "--pretrained",
        tmp_path,
        "--run-dir",
        tmp_path / "run2",
        "--no-export",
        "--skip-test",
    )
    assert proc.returncode == 2 and "not a pretrained encoder" in proc.stderr


@pytest.mark.slow
def test_killed_pretraining_resumes_and_ends_as_an_uninterrupted_run(folder, tmp_path):
    """The sampled softmax draws random words: a resumed run must draw the same ones."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps(
            {
                **TINY_CONFIG,
                **PRETRAIN,
                "pretrain_epochs": 3,
                "pretrain_objective": "sampled_softmax",
            }
        )
    )
    common = ["--data", folder / "tiny.csv.gz", "--config", cfg, "--cache-dir", tmp_path / "cache"]
    ref = run_script("pretrain.py", *common, "--out", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-3000:]

    out = tmp_path / "enc"
    proc = script("pretrain.py", *common, "--out", out, wait=False)
    kill_when(proc, lambda: (tmp_path / ".enc.work" / "checkpoint.npz").exists())  # after epoch 1
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    resumed = run_script("pretrain.py", *common, "--out", out)  # the same command again
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "pretrain: resuming after epoch" in resumed.stderr
    assert not (tmp_path / ".enc.work").exists()  # removed once the encoder is written

    losses = ["loss", "forward_loss", "backward_loss", "val_loss"]
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "history.csv")[losses],
        pd.read_csv(tmp_path / "ref" / "history.csv")[losses],
    )
    with (
        np.load(out / pretrain.ENCODER_FILE) as a,
        np.load(tmp_path / "ref" / pretrain.ENCODER_FILE) as b,
    ):
        assert sorted(a.files) == sorted(b.files) and len(a.files) == 6
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
    again = run_script("pretrain.py", *common, "--out", out)  # finished: reused, not redone
    assert again.returncode == 0 and "using it" in again.stderr


@pytest.mark.slow
def test_pretrain_never_replaces_an_encoder_unless_asked(folder, encoder):
    def snapshot():
        return {
            p: (p.read_bytes(), p.stat().st_mtime_ns) for p in encoder.rglob("*") if p.is_file()
        }

    before = snapshot()
    common = ["--data", folder / "tiny.csv.gz", "--config", folder / "cfg.json", "--out", encoder]
    proc = run_script("pretrain.py", *common, "--seed", 99)  # other settings: refused
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"{encoder}: holds an encoder pretrained with other settings" in proc.stderr
    assert "--fresh" in proc.stderr and snapshot() == before
    proc = run_script("pretrain.py", *common)  # the same settings: kept as it is, and used
    assert proc.returncode == 0 and "using it" in proc.stderr, proc.stderr[-3000:]
    assert snapshot() == before
