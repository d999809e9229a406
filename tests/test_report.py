"""Insight: the run report's plots, evaluate.py, embedding views and --explain on a trained tiny
model."""

import struct

import numpy as np
import pytest
from conftest import NEGATIVE, POSITIVE, run_main, run_script

from imdb_sentiment.evaluate import evaluate, expected_calibration_error, mcnemar, pair_accuracy
from imdb_sentiment.results import PairScores

PLOTS = ("curves.png", "confusion.png", "roc_pr.png", "reliability.png", "accuracy_by_length.png")


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def assert_plots(folder, names):
    for name in names:
        width, height = png_size(folder / name)
        assert 300 <= width <= 3000 and 300 <= height <= 3000, (name, width, height)
        assert (folder / name).stat().st_size > 10_000, (
            name
        )  # a blank canvas compresses to a few kB


def test_training_leaves_report_and_every_plot(trained):
    run = trained["run_dir"]
    assert_plots(run, PLOTS)
    report = (run / "report.md").read_text()
    for name in PLOTS:
        assert f"]({name})" in report
    for column in ("model validation", "model test", "baseline validation", "baseline test"):
        assert column in report
    assert "| ECE |" in report and "Most confidently wrong validation reviews" in report
    import json

    parts = json.loads((run / "metrics.json").read_text())["parts"]
    b = parts["blend"]
    assert f"log-odds = {b['lstm']:.3f} × LSTM + {b['bag']:.3f} × bag" in report
    assert f"the n-gram bag {parts['bag_val_accuracy']:.4f}" in report
    assert not list(run.glob(".*.partial*"))  # no temporary file left behind


def test_every_run_measures_minimal_edits_and_reports_them(trained):
    import json

    run = trained["run_dir"]
    metrics = json.loads((run / "metrics.json").read_text())
    counts = json.loads((run / "data_report.json").read_text())["counterfactuals"]
    # Every training pair is trained on, held out, or left out for being a val or test review.
    assert (
        counts["train_pairs"]
        + counts["held_out_pairs"]
        + counts["train_pairs_left_out_val"]
        + counts["train_pairs_left_out_test"]
        == counts["train_pairs_read"]
    )
    assert metrics["pairs_trained_on"]["human_pairs"] == counts["train_pairs"]
    edits = metrics["edits"]
    assert set(edits) == {"held_out", "dev"}  # dev pairs read with the test split
    assert edits["held_out"]["pairs"] == counts["held_out_pairs"]
    assert edits["dev"]["pairs"] == counts["dev_pairs"]
    for result in edits.values():
        assert set(result) == {"pairs", "blend", "lstm", "bag", "baseline"}
        for row in (v for k, v in result.items() if k != "pairs"):
            assert row["both"] <= min(row["originals"], row["edits"])
    report = (run / "report.md").read_text()
    assert "## Minimal edits: counterfactual review pairs" in report and "](edits.png)" in report
    assert f"| dev pairs ({counts['dev_pairs']}) | blend (the model) | " in report
    assert_plots(run, ["edits.png"])


def test_ece_of_calibrated_and_overconfident_predictions():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200_000)
    y = rng.uniform(size=p.size) < p  # labels drawn with exactly the predicted probability
    assert expected_calibration_error(y, p)[0] < 0.01
    # Always 99% sure, right 70% of the time: ECE = 0.29
    y = np.r_[np.ones(700), np.zeros(300)]
    assert expected_calibration_error(y, np.full(1000, 0.99))[0] == pytest.approx(0.29)
    assert evaluate(y, np.full(1000, 0.99)).ece == pytest.approx(0.29)


def test_pair_accuracy_counts_a_pair_read_only_when_both_its_texts_are_right():
    # Four pairs: originals right, right, right, wrong; their edits right, wrong, wrong, right.
    right = np.array([1, 1, 1, 0, 1, 0, 0, 1], bool)
    assert pair_accuracy(right) == PairScores(originals=0.75, edits=0.5, both=0.25)


def test_mcnemar_exact_p_value_by_hand_and_without_discordant_reviews():
    # 10 reviews: both right on 3, both wrong on 1, only the first right on 5, only the second on 1.
    first = [1, 1, 1, 0, 1, 1, 1, 1, 1, 0]
    second = [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    m = mcnemar(first, second, names=("model", "baseline"))
    assert (m["n"], m["model_only_correct"], m["baseline_only_correct"]) == (10, 5, 1)
    # Binomial(6, 1/2), two-sided: 2 * P(X <= 1) = 2 * (1 + 6) / 64
    assert m["p_value"] == pytest.approx(14 / 64)
    assert mcnemar([1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0])["p_value"] == 1.0  # 1 of 1: no evidence
    same = mcnemar([1, 0, 1], [1, 0, 1])  # no discordant review at all
    assert (same["first_only_correct"], same["second_only_correct"], same["p_value"]) == (0, 0, 1.0)


def test_model_and_baseline_are_compared_on_the_same_test_reviews(trained):
    import json

    metrics = json.loads((trained["run_dir"] / "metrics.json").read_text())
    paired = metrics["model_vs_baseline"]
    assert paired["n"] == metrics["test"]["n"] == metrics["baseline"]["test"]["n"]
    # Exactly paired: the accuracies differ by the discordant reviews each won, over the same n.
    won = paired["model_only_correct"] - paired["baseline_only_correct"]
    assert won / paired["n"] == pytest.approx(
        metrics["test"]["accuracy"] - metrics["baseline"]["test"]["accuracy"]
    )
    assert 0 < paired["p_value"] <= 1
    report = (trained["run_dir"] / "report.md").read_text()
    assert f"only the model right on {paired['model_only_correct']}" in report
    assert "not independent" in report and "McNemar" in trained["stdout"]


@pytest.mark.slow
def test_evaluate_script_rebuilds_the_same_metrics(trained, tiny_csv, tiny_pairs, tmp_path):
    import json

    out = tmp_path / "eval"
    proc = run_script(
        "evaluate.py",
        trained["version"],
        "--data",
        tiny_csv,
        "--out",
        out,
        "--counterfactuals",
        tiny_pairs,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_plots(out, PLOTS)  # curves come from the run folder recorded in the export
    got = json.loads((out / "evaluation.json").read_text())
    # Training ran TensorFlow's own threads per op, evaluate.py one by default: the same figures.
    want = json.loads((trained["run_dir"] / "metrics.json").read_text())
    for split in ("val", "test"):
        assert got[split]["accuracy"] == want[split]["accuracy"]
        assert got[split]["roc_auc"] == pytest.approx(want[split]["roc_auc"], abs=1e-6)
    for cut, row in got["short_inputs"].items():  # the same cuts scored the same way; no baseline
        assert row == {k: v for k, v in want["short_inputs"][cut].items() if k != "baseline"}
    assert "](short_inputs.png)" in (out / "report.md").read_text()
    for name, result in got["edits"].items():  # the same pairs held out, scored the same way
        assert result == {k: v for k, v in want["edits"][name].items() if k != "baseline"}
    assert "](edits.png)" in (out / "report.md").read_text()
    from imdb_sentiment.commands.evaluate import main  # a user error: no process needed

    proc = run_main(main, tmp_path / "nothing-here", "--data", tiny_csv)
    assert (
        proc.returncode == 2
        and "no such run folder" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_embedding_views(trained, tmp_path):
    from imdb_sentiment.commands.visualize import main  # as visualize_embeddings.py runs it

    proc = run_main(main, trained["run_dir"], "--count", "20", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_plots(tmp_path, ("embeddings_pca.png", "embeddings_tsne.png"))
    words = ",".join(POSITIVE[:3] + NEGATIVE[:3] + ["zzqx"])
    proc = run_main(main, trained["version"], "--words", words, "--out", tmp_path / "w")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "zzqx" in proc.stderr  # named as left out
    assert_plots(tmp_path / "w", ("embeddings_pca.png", "embeddings_tsne.png"))
    proc = run_main(main, trained["run_dir"], "--words", "zzqx,qqzx")
    assert proc.returncode == 2 and "at least 3 words" in proc.stderr


def test_removing_the_top_word_moves_the_prediction_as_stated(trained):
    from imdb_sentiment.explain import explain
    from imdb_sentiment.predict import Predictor

    predictor = Predictor(trained["models"])
    for review, sign in (
        ("the plot was wonderful and the cast superb , a moving story", 1),
        ("the plot was dull and the music awful , a pointless story", -1),
    ):
        e = explain(predictor, review)
        assert len(e.words) == len(e.attributions) == len(review.split())
        word, score = e.top(1, sign)[0]
        assert word in (POSITIVE if sign > 0 else NEGATIVE) and sign * score > 0
        without = review.replace(f" {word} ", " ", 1)
        full, rest = predictor.logits([review, without])
        assert full == pytest.approx(e.logit, abs=1e-4)
        assert sign * (full - rest) == pytest.approx(
            abs(score), abs=1e-4
        )  # the stated change, measured
        p_full, p_rest = (r["probability"] for r in predictor.predict([review, without]))
        assert sign * (p_full - p_rest) >= 0


def test_predict_explain_cli_and_html(trained, tmp_path):
    from imdb_sentiment.commands.predict import main  # as scripts/predict.py runs it

    page = tmp_path / "why.html"
    proc = run_main(
        main,
        "--model",
        trained["models"],
        "--explain",
        "--html",
        page,
        "A wonderful and superb film.",
        "Boring <b>awful</b> & dull.",
        "",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("pushed towards positive") == 3
    assert "wonderful +" in proc.stdout and "awful -" in proc.stdout
    assert "\033[" not in proc.stdout  # no colour codes when the output is not a terminal
    html = page.read_text()
    assert html.count("<section>") == 3 and "<b>" not in html and "&amp;" in html
    proc = run_main(main, "--server", "http://127.0.0.1:9", "--explain", "good")
    assert proc.returncode == 2 and "--explain needs the local model" in proc.stderr
