"""Refusals of what does not match: a run resumed with another config or data, evaluation on other
data, a misspelt config key; and the empty input that has nothing to refuse."""

import json

import numpy as np
import pytest
from conftest import TINY_CONFIG, run_main, run_script, synthetic_reviews

from imdb_sentiment import data
from imdb_sentiment.config import RETIRED_KEYS, Config
from imdb_sentiment.files import UserError
from imdb_sentiment.runs import CHECKPOINT, find_unfinished


def snapshot(folder):
    """Every file under folder with its bytes and modification time: any write shows."""
    return {
        p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def unfinished_run(folder, cfg: Config, csv) -> None:
    """What an interrupted train.py leaves: its config, its data's checksum and a checkpoint."""
    folder.mkdir(parents=True)
    cfg.save(folder / "config.json")
    splits = data.load(csv, cfg)
    (folder / "data_report.json").write_text(json.dumps({"checksum": splits.checksum}))
    np.savez(folder / CHECKPOINT, n_variables=3, v0=np.zeros(1))


def test_misspelt_config_key_exits_2_naming_the_closest_key(tiny_csv, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY_CONFIG, "sead": 3, "lstm_unit": 16}))
    proc = run_script(
        "train.py", "--data", tiny_csv, "--config", cfg, "--run-dir", tmp_path / "run"
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "'sead' (did you mean 'seed'?)" in proc.stderr and str(cfg) in proc.stderr
    assert "'lstm_unit' (did you mean 'lstm_units'?)" in proc.stderr
    assert not (tmp_path / "run").exists()
    # Keys retired on purpose, which config.json files of earlier versions hold, still load.
    old = tmp_path / "old_config.json"
    old.write_text(json.dumps({**Config().to_dict(), **{k: 0.5 for k in RETIRED_KEYS}}))
    assert Config.load(old) == Config()
    old.write_text(
        json.dumps({"max_len": 10, "head_tokens": 20})
    )  # a value out of range: named too
    with pytest.raises(UserError, match=r"old_config.json: head_tokens must be in"):
        Config.load(old)
    old.write_text(json.dumps({"word_polarity_min_reviews": -1}))
    with pytest.raises(UserError, match=r"word_polarity_min_reviews must be 0 \(off\) or more"):
        Config.load(old)


@pytest.mark.slow
def test_resume_with_another_config_or_data_is_refused_and_the_run_left_untouched(
    tiny_csv, tmp_path
):
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({**TINY_CONFIG, "epochs": 1}))
    cfg = Config.load(cfg_file)
    run = tmp_path / "run"
    unfinished_run(run, cfg, tiny_csv)
    before = snapshot(run)
    common = ["--config", cfg_file, "--run-dir", run, "--no-export", "--skip-test"]

    proc = run_script("train.py", "--data", tiny_csv, *common, "--seed", 99)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "seed: 1337 -> 99" in proc.stderr and "--fresh" in proc.stderr
    assert snapshot(run) == before

    other = tmp_path / "other.csv"
    synthetic_reviews(400, seed=5).assign(split=["train"] * 300 + ["test"] * 100).to_csv(
        other, index=False
    )
    proc = run_script("train.py", "--data", other, *common)
    assert proc.returncode == 2 and "with another config or data (data checksum: " in proc.stderr
    assert snapshot(run) == before

    # --fresh starts the folder over: the earlier run's files go, none is left half-deleted
    # beside it.
    (run / "stale.txt").write_text("from the earlier run")
    proc = run_script("train.py", "--data", other, *common, "--fresh")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (run / "stale.txt").exists() and not (run / CHECKPOINT).exists()
    assert (run / "metrics.json").exists() and [
        p.name for p in tmp_path.iterdir() if p.name.startswith(".")
    ] == []
    # A folder that is no run is never emptied by --fresh.
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    proc = run_script(
        "train.py", "--data", other, *common[:2], "--run-dir", tmp_path / "notes", "--fresh"
    )
    assert proc.returncode == 2 and "not a run folder" in proc.stderr
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def finished_run(folder, cfg: Config, csv) -> None:
    """What a finished train.py leaves, as far as the finished-run check reads it."""
    from imdb_sentiment.evaluate import evaluate
    from imdb_sentiment.results import Results

    unfinished_run(folder, cfg, csv)
    (folder / CHECKPOINT).unlink()
    scores = evaluate([0, 1], [0.4, 0.4])  # a real metrics.json, of a model right half the time
    (folder / "metrics.json").write_text(json.dumps(Results(val=scores).to_dict()))
    (folder / "model.keras").write_bytes(b"the earlier run's model")
    (folder / "report.md").write_text("# Run report")


@pytest.mark.slow
def test_a_finished_run_is_never_trained_over_unless_asked(tiny_csv, tmp_path):
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({**TINY_CONFIG, "epochs": 1}))
    run = tmp_path / "run"
    finished_run(run, Config.load(cfg_file), tiny_csv)
    before = snapshot(run)
    common = ["--data", tiny_csv, "--config", cfg_file, "--run-dir", run, "--no-export"]

    # The same command again: it says where the finished run is and trains nothing.
    proc = run_script("train.py", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "this run is finished" in proc.stdout and str(run / "model.keras") in proc.stdout
    assert "--fresh" in proc.stdout and "Epoch" not in proc.stdout + proc.stderr
    assert snapshot(run) == before

    # Another config: refused, naming what differs.
    proc = run_script("train.py", *common, "--seed", 99)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "holds a finished run with another config or data" in proc.stderr
    assert "seed: 1337 -> 99" in proc.stderr and "--fresh" in proc.stderr
    assert snapshot(run) == before

    # --fresh trains again and replaces it.
    proc = run_script("train.py", *common, "--skip-test", "--fresh")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "model.keras").read_bytes() != b"the earlier run's model"
    assert "accuracy" in json.loads((run / "metrics.json").read_text())["val"]


def test_automatic_resume_takes_only_a_run_of_the_same_config_and_data(tiny_csv, tmp_path):
    cfg = Config(**TINY_CONFIG)
    unfinished_run(tmp_path / "a", cfg, tiny_csv)
    unfinished_run(
        tmp_path / "b", Config(**{**TINY_CONFIG, "seed": 2}), tiny_csv
    )  # newer, other seed
    splits = data.load(tiny_csv, cfg)
    assert find_unfinished(tmp_path, cfg, splits.checksum) == tmp_path / "a"
    assert find_unfinished(tmp_path, cfg, "0" * 64) is None


def test_evaluate_refuses_other_data_unless_asked_and_then_warns(trained, tmp_path):
    from imdb_sentiment.commands.evaluate import main  # as scripts/evaluate.py runs it

    other = tmp_path / "other.csv"
    synthetic_reviews(300, seed=8).to_csv(other, index=False)  # no split column: a seeded split
    proc = run_main(main, trained["version"], "--data", other, "--out", tmp_path / "refused")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "not the data" in proc.stderr and "--other-data" in proc.stderr
    assert not (tmp_path / "refused").exists()
    args = [trained["run_dir"], "--data", other, "--splits", "val", "--out", tmp_path / "eval"]
    proc = run_main(main, *args, "--other-data")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning:" in proc.stderr and "may overlap training" in proc.stderr
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text())["training_data"] is False
    assert "rewritten" not in proc.stderr
    # A report is rebuilt from the model, so it may be rewritten; the log says so.
    again = run_main(main, *args, "--other-data")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"evaluation.json and report.md in {tmp_path / 'eval'} rewritten" in again.stderr


def test_no_texts_give_no_predictions(trained):
    from imdb_sentiment.predict import Predictor

    predictor = Predictor(trained["models"])
    assert predictor.predict([]) == []
    logits = predictor.logits([])
    assert logits.shape == (0,) and logits.dtype == np.float32
