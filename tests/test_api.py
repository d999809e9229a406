"""The pipeline from Python: fit() and evaluate_model() return typed results, every run and
export carries a model card whose figures are the results', and the example script runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, TINY_CONFIG

# The README's Python section, run as a user would run it.
README_SNIPPET = """
from imdb_sentiment import fit
run = fit("{data}", {config}, run_dir="{out}/run", export_dir="{out}/models")
print(run.results.val.accuracy, run.results.test.accuracy, run.export_path)
print(run.card.splitlines()[0])
print(*run.predict(["A wonderful film.", "Dull and pointless."]))
"""


def python(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


@pytest.mark.slow
def test_fit_from_python_returns_typed_results_and_exports_a_card(tiny_csv, tmp_path):
    config = {**TINY_CONFIG, "epochs": 2}
    proc = python("-c", README_SNIPPET.format(data=tiny_csv, config=config, out=tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, title, predicted = proc.stdout.splitlines()[-3:]
    val, test, version = first.split()
    positive, negative = map(float, predicted.split())
    assert positive > 0.5 > negative  # the tiny data's words, read by the trained model
    assert title == "# Model card: imdb-sentiment"
    assert version == str(tmp_path / "models" / "1")
    card = (tmp_path / "models" / "1" / "model_card.md").read_text()
    assert card == (tmp_path / "run" / "model_card.md").read_text()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["val"]["accuracy"], metrics["test"]["accuracy"]) == (float(val), float(test))
    assert metrics["epochs_run"] == 2

    # The same call again finds the run finished and gives back its results, training nothing.
    again = f"run = fit('{tiny_csv}', {config}, run_dir='{tmp_path}/run')"
    proc = python(
        "-c",
        f"from imdb_sentiment import fit\n{again}\nprint(run.trained, run.results.val.accuracy)",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["False", val]


def test_the_card_shows_the_results_figures(trained):
    """Every figure the card gives is the one in metrics.json, to the digits it prints."""
    from imdb_sentiment.card import SCORERS
    from imdb_sentiment.results import Results

    results = Results.from_dict(json.loads((trained["run_dir"] / "metrics.json").read_text()))
    card = (trained["version"] / "model_card.md").read_text()
    for name, s in results.splits().items():
        split = {"val": "validation", "test": "test"}[name]
        low, high = s.accuracy_95ci
        assert f"| {split}, the model | {s.accuracy:.4f} ({low:.3f}-{high:.3f}) | {s.n:,} |" in card
        for part, accuracy in s.parts.items():
            assert f"| {split}, {SCORERS[part]} alone | {accuracy:.4f} | {s.n:,} |" in card
    base = results.baseline.test
    assert f"| test, TF-IDF baseline | {base.accuracy:.4f}" in card
    for cut, scores in results.short_inputs.items():
        assert (
            f"- {cut.replace('_', ' ')}: {scores.blend:.4f} (TF-IDF {scores.baseline:.4f})" in card
        )
    for name, e in results.edits.items():
        b = e.blend
        assert f"({e.pairs}): the model {b.originals:.3f} / {b.edits:.3f} / {b.both:.3f}" in card
    for line in results.hard_lines:
        assert f'"{line.text}" {line.probability:.2f}' in card
    assert len(results.hard_lines) == 6 and all(0 <= r.probability <= 1 for r in results.hard_lines)


def test_metrics_json_is_the_results_dump_and_reads_back(trained):
    from imdb_sentiment.results import Results

    raw = json.loads((trained["run_dir"] / "metrics.json").read_text())
    results = Results.from_dict(raw)
    assert results.to_dict() == raw
    assert results.test.confusion_matrix["tp"] + results.test.confusion_matrix["fn"] > 0
    assert results.parts.blend.lstm == raw["parts"]["blend"]["lstm"]


def test_an_export_without_a_card_gets_one_from_its_info(trained, tmp_path):
    """Versions exported before cards: the card is made from model_info.json's figures, and
    metrics of the previous version (no hard lines) still read."""
    from imdb_sentiment.card import read_card

    old = tmp_path / "1"
    shutil.copytree(trained["version"], old)
    (old / "model_card.md").unlink()
    info = json.loads((old / "model_info.json").read_text())
    for key in ("hard_lines", "missed_edits"):
        info["metrics"].pop(key, None)
    (old / "model_info.json").write_text(json.dumps(info))
    card = read_card(old)
    val = info["metrics"]["val"]["accuracy"]
    assert card.startswith("# Model card") and f"| validation, the model | {val:.4f}" in card
    assert "exported before model cards" in card


@pytest.mark.slow
def test_the_example_trains_predicts_explains_and_reads_the_card(tiny_csv, tmp_path):
    proc = python(str(ROOT / "examples" / "quickstart.py"), str(tiny_csv), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "validation accuracy" in out and "exported: " + str(tmp_path / "models" / "1") in out
    assert "pushed towards positive:" in out  # the explanation
    assert out.rstrip().endswith((tmp_path / "models" / "1" / "model_card.md").read_text().rstrip())


def test_docs_name_every_field_of_metrics_json():
    import dataclasses

    from imdb_sentiment.results import Results

    table = (ROOT / "docs" / "training.md").read_text().split("### metrics.json")[1]
    for f in dataclasses.fields(Results):
        assert f"`{f.name}`" in table, f.name


def test_a_run_says_where_its_time_went_and_benchmark_prints_it(trained, tmp_path):
    """metrics.json holds the phases in order, the LSTM's rows a whole number of epochs, and
    `benchmark.py --phases` prints them with their rates, two runs side by side, and refuses a
    folder that is no finished run without a traceback."""
    raw = json.loads((trained["run_dir"] / "metrics.json").read_text())
    phases = {p["name"].split(",")[0]: p for p in raw["phases"]}
    assert list(phases)[:3] == ["reading the reviews", "pairs", "tokenizing"]
    assert list(phases)[-1] == "evaluating"
    assert {"LSTM", "bag", "blend"} <= set(phases)
    assert all(p["seconds"] >= 0 for p in raw["phases"])
    assert phases["LSTM"]["seconds"] > 0 and phases["LSTM"]["rows"] % raw["epochs_run"] == 0
    config = json.loads((trained["run_dir"] / "config.json").read_text())
    assert phases["bag"]["name"] == f"bag, {len(config['ngram_c_grid'])} values of C"

    slower = tmp_path / "slower"
    slower.mkdir()
    raw["phases"] = [{**p, "seconds": 2 * p["seconds"]} for p in raw["phases"]]
    (slower / "metrics.json").write_text(json.dumps(raw))
    proc = python("scripts/benchmark.py", "--phases", str(trained["run_dir"]), str(slower))
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout.splitlines()
    lstm = next(line for line in table if line.startswith("| LSTM |"))
    rate = phases["LSTM"]["rows"] / phases["LSTM"]["seconds"]
    assert f", {rate:,.0f} |" in lstm and lstm.endswith("| 2.00 |")
    assert table[-1].startswith("| all phases |") and table[-1].endswith("| 2.00 |")

    proc = python("scripts/benchmark.py", "--phases", str(tmp_path))
    assert proc.returncode != 0 and "metrics.json" in proc.stderr and "Traceback" not in proc.stderr
