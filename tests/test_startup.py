"""A command's output is what the user asked for: TensorFlow's start-up notices are held back,
and anything else written to stderr, a real error above all, still gets through."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, run_script

NOTICES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795626628.071178   12578 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.",
    "E0000 00:00:1795626645.509774   12578 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
]


def test_predict_writes_one_line_to_stdout_and_nothing_to_stderr(trained):
    proc = run_script("predict.py", "--model", trained["models"], "Great film")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 1 and '"label"' in proc.stdout


def test_held_stderr_drops_only_the_known_notices():
    lines = NOTICES + [
        "E0000 00:00:1795626645.509774   12578 cuda_platform.cc:52] failed call to "
        "cuInit: CUDA_ERROR_OUT_OF_MEMORY",
        "a real problem",
    ]
    script = textwrap.dedent(f"""
        import os
        from imdb_sentiment import cli
        with cli.held_stderr():
            for line in {lines!r}:
                os.write(2, (line + "\\n").encode())
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == lines[-2:]


def test_a_real_tensorflow_error_still_reaches_stderr(trained, tmp_path):
    broken = tmp_path / "broken" / "1"
    shutil.copytree(trained["version"], broken)
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    proc = run_script("predict.py", "--model", broken, "Great film")
    assert proc.returncode != 0
    assert "saved_model.pb" in proc.stderr or "SavedModel" in proc.stderr, proc.stderr
    assert proc.stdout == ""


def entry_point() -> str:
    """The console script pip installed beside this Python."""
    return str(Path(sys.executable).with_name("imdb-sentiment"))


def test_the_entry_point_lists_every_command():
    proc = subprocess.run([entry_point(), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for command in (
        "train",
        "pretrain",
        "predict",
        "serve",
        "evaluate",
        "baseline",
        "benchmark",
        "fetch",
    ):
        assert f"\n  {command} " in proc.stdout
    proc = subprocess.run([entry_point(), "tarin"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown command 'tarin'" in proc.stderr


@pytest.mark.slow
def test_the_entry_point_predicts_as_the_script_does(trained):
    proc = subprocess.run(
        [entry_point(), "predict", "--model", str(trained["models"]), "Great film", "Dull."],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert (
        proc.stdout
        == run_script("predict.py", "--model", trained["models"], "Great film", "Dull.").stdout
    )


@pytest.mark.slow
def test_a_reader_gone_early_ends_a_command_quietly(trained):
    """`imdb-sentiment --help | head -1` and the like: once the reader has closed the pipe, the
    command stops with exit code 0 and no traceback, whatever it was still writing."""
    for command in (
        [entry_point(), "--help"],
        [entry_point(), "predict", "--help"],
        [entry_point(), "predict", "--model", str(trained["models"]), "Great film", "Dull."],
    ):
        read, write = os.pipe()
        os.close(read)  # before the command writes anything: it takes a second to start
        with os.fdopen(write, "wb") as stdout:
            proc = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, timeout=300)
        assert proc.returncode == 0, (command, proc.stderr)
        assert b"Traceback" not in proc.stderr and b"BrokenPipe" not in proc.stderr, proc.stderr
