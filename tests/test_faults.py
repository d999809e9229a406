"""Faults: training killed with SIGKILL resumes where it was; an export killed half-way leaves
nothing."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY_CONFIG, run_script, script_command

from imdb_sentiment import data
from imdb_sentiment.config import Config
from imdb_sentiment.export import versions
from imdb_sentiment.files import UserError


def script(name, *args, cwd=ROOT, wait=True, mixed_precision=False):
    cmd = script_command(name, *args, mixed_precision=mixed_precision)
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the process ended before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting for the moment to kill"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def weights(run: Path) -> list[np.ndarray]:
    return keras.saving.load_model(run / "model.keras", safe_mode=True).get_weights()


@pytest.mark.parametrize("mixed_precision", [False, True], ids=["float32", "mixed_float16"])
@pytest.mark.slow
def test_killed_training_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_run(
    tiny_csv, tmp_path, mixed_precision
):
    """Under mixed_float16 (a GPU run's policy) the loss scale and its counter are resumed too."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY_CONFIG, "epochs": 5, "patience": 5}))
    common = ["--data", tiny_csv, "--config", cfg, "--seed", 11, "--no-export", "--skip-test"]
    ref = run_script(
        "train.py", *common, "--run-dir", tmp_path / "ref", mixed_precision=mixed_precision
    )
    assert ref.returncode == 0, ref.stderr[-3000:]

    # The same command, without --run-dir, from a folder of its own: runs/<time>/ is made there.
    proc = script("train.py", *common, cwd=tmp_path, wait=False, mixed_precision=mixed_precision)
    kill_when(
        proc, lambda: any((tmp_path / "runs").glob("*/checkpoint.npz"))
    )  # after the first epoch
    assert proc.returncode == -signal.SIGKILL
    [run] = (tmp_path / "runs").iterdir()
    epochs_done = (
        len(pd.read_csv(run / "history.csv")) if (run / "history.csv").stat().st_size else 0
    )
    assert epochs_done < 5 and not (run / "metrics.json").exists()
    # The same command again.
    resumed = script("train.py", *common, cwd=tmp_path, mixed_precision=mixed_precision)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert ("mixed_float16 in training" in resumed.stderr) == mixed_precision
    print(
        f"killed after {epochs_done} epoch(s) were logged;",
        resumed.stderr.split("resume: ")[1].split("\n")[0],
    )
    assert f"run: runs/{run.name}" in resumed.stderr and "continuing from there" in resumed.stderr
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run.name]
    assert not (run / "checkpoint.npz").exists()  # removed once training finished

    # Same data order per epoch, same dropout seeds, same optimizer step: the same run, bit for bit.
    pd.testing.assert_frame_equal(
        pd.read_csv(run / "history.csv"), pd.read_csv(tmp_path / "ref" / "history.csv")
    )
    for a, b in zip(weights(run), weights(tmp_path / "ref"), strict=True):
        np.testing.assert_array_equal(a, b)
    m_run, m_ref = (json.loads((d / "metrics.json").read_text()) for d in (run, tmp_path / "ref"))
    assert m_run["val"]["accuracy"] == m_ref["val"]["accuracy"] and m_run["epochs_run"] == 5


def test_checkpoint_of_another_model_is_refused(tiny_csv, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY_CONFIG, "epochs": 1}))
    run = tmp_path / "run"
    run.mkdir()
    # Same config and data (so it is resumed), but a checkpoint of another model.
    Config.load(cfg).save(run / "config.json")
    checksum = data.load(tiny_csv, Config.load(cfg)).checksum
    (run / "data_report.json").write_text(json.dumps({"checksum": checksum}))
    np.savez(run / "checkpoint.npz", n_variables=3, v0=np.zeros(1))
    proc = run_script(
        "train.py",
        "--data",
        tiny_csv,
        "--config",
        cfg,
        "--no-export",
        "--skip-test",
        "--run-dir",
        run,
    )
    assert proc.returncode == 2 and "checkpoint of a different model" in proc.stderr
    assert "Traceback" not in proc.stderr


EXPORT_CHILD = """
import sys, keras
sys.path.insert(0, {src!r})
from imdb_sentiment.export import export
from imdb_sentiment.runs import load_artifacts
art = load_artifacts({run!r})
export(art.model, art.vectorizer, {{"config": art.cfg.to_dict()}}, {base!r})
"""


@pytest.mark.parametrize(
    "moment", ["as the temporary folder appears", "half-way through the export"]
)
@pytest.mark.slow
def test_export_killed_midway_leaves_no_version_behind(trained, tmp_path, moment):
    base = tmp_path / "models"
    code = EXPORT_CHILD.format(src=str(ROOT / "src"), run=str(trained["run_dir"]), base=str(base))

    def partial_exists():
        return base.exists() and any(p.name.endswith(".partial") for p in base.iterdir())

    def partial_half_written():  # the SavedModel is in; model.keras and model_info.json are not yet
        return partial_exists() and any(base.glob(".*.partial/saved_model.pb"))

    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    kill_when(proc, partial_exists if moment.startswith("as") else partial_half_written)
    assert versions(base) == [] and not any(p.name.isdigit() for p in base.iterdir())
    from imdb_sentiment.predict import Predictor

    with pytest.raises(UserError, match="no exported model"):
        Predictor(base)
    # A later export is not confused by the leftover and takes version 1.
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert versions(base) == [1] and (base / "1" / "model_info.json").exists()


def test_a_model_file_with_python_code_is_refused(trained, tmp_path):
    """safe_mode: a .keras file with a Lambda layer (marshalled Python bytecode) is not loaded."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained["run_dir"], run, ignore=shutil.ignore_patterns("tensorboard"))
    inp = keras.Input((3,))
    keras.Model(inp, keras.layers.Lambda(lambda x: x * 2)(inp)).save(run / "model.keras")
    proc = run_script("visualize_embeddings.py", run, "--words", "good,bad,film")
    assert (
        proc.returncode == 2 and "refused to load" in proc.stderr and "Traceback" not in proc.stderr
    )
