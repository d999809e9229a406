"""The package logs through `logging` to stderr; results go to stdout; -q and -v set the level.
Progress bars are drawn on a terminal only."""

import fcntl
import importlib
import json
import logging
import os
import pty
import struct
import subprocess
import sys
import termios
import threading

import pytest
from conftest import ROOT, run_script, script_command

from imdb_sentiment import cli


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_takes_quiet_and_verbose(command, capsys):
    module = importlib.import_module(f"imdb_sentiment.commands.{cli.COMMANDS[command]}")
    with pytest.raises(SystemExit) as done:
        module.main(["--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    assert "-q, --quiet" in help_text and "-v, --verbose" in help_text
    with pytest.raises(SystemExit) as done:
        module.main(["--quiet", "--verbose"])
    assert done.value.code == 2  # one or the other
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, level", [([], logging.INFO), (["-q"], logging.WARNING), (["--verbose"], logging.DEBUG)]
)
def test_the_flags_set_the_package_log_level(flags, level):
    logger = logging.getLogger("imdb_sentiment")
    try:
        cli.Parser("test").parse_args(flags)
        cli.Parser("test").parse_args(flags)
        assert logger.level == level
        assert len(logger.handlers) == 1  # parsing again replaces the handler, never adds one
    finally:  # as it was, for caplog in the tests after this one
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def test_log_on_stderr_results_on_stdout_and_quiet_keeps_only_results(tiny_csv):
    common = ("--data", tiny_csv, "--max-rows", "200")
    loud = run_script("baseline.py", *common, timeout=300)
    quiet = run_script("baseline.py", *common, "--quiet", timeout=300)
    verbose = run_script("baseline.py", *common, "-v", timeout=300)
    assert loud.returncode == quiet.returncode == verbose.returncode == 0, loud.stderr
    assert "data: " in loud.stderr and "baseline: C=" in loud.stderr
    assert "baseline: C=" not in loud.stdout and "accuracy" in loud.stdout
    assert quiet.stderr == ""
    assert quiet.stdout.splitlines()[:-1] == loud.stdout.splitlines()[:-1]  # the last line: time
    assert "debug: data: checksum of the splits" in verbose.stderr
    assert "debug:" not in loud.stderr
    assert len(set(loud.stderr.splitlines())) == len(loud.stderr.splitlines())  # each line once


def test_a_library_logging_to_the_root_logger_does_not_print_ours_twice():
    script = (
        "import logging; from imdb_sentiment import cli; cli.setup_logging(logging.INFO); "
        "logging.warning('from a library');"  # gives the root logger a handler (basicConfig)
        "logging.getLogger('imdb_sentiment.data').info('ours')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines() if "ours" in line] == ["ours"]


def stderr_on_a_terminal(command: list[str]) -> tuple[int, str, str]:
    """Runs command with its stderr on a pseudo-terminal, as a user's shell has it."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=child, stdin=subprocess.DEVNULL, cwd=ROOT
    )
    os.close(child)
    seen = []

    def read():
        try:
            while chunk := os.read(main, 4096):
                seen.append(chunk)
        except OSError:  # EIO: the child's side is closed
            pass

    reader = threading.Thread(target=read)
    reader.start()
    out, _ = proc.communicate(timeout=300)
    reader.join(timeout=30)
    os.close(main)
    return proc.returncode, out.decode(), b"".join(seen).decode("utf-8", "replace")


@pytest.mark.slow
def test_predicting_a_file_shows_progress_on_a_terminal_and_nothing_in_a_log(trained, tmp_path):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("".join(f"review {i}: a fine film\n" for i in range(3000)))
    command = script_command("predict.py", "--model", trained["models"], "--file", reviews)
    code, out, terminal = stderr_on_a_terminal(command)
    assert code == 0, terminal
    assert len(out.splitlines()) == 3000
    assert "predicting" in terminal and "review/s" in terminal and "/3.00k" in terminal
    quiet_code, _, quiet_terminal = stderr_on_a_terminal(command + ["--quiet"])
    assert quiet_code == 0 and "predicting" not in quiet_terminal
    logged = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert logged.returncode == 0 and logged.stderr == ""  # a log file gets no bar
    assert logged.stdout == out


@pytest.mark.slow
def test_the_benchmark_runs_its_sections_and_logs_each_line_once(tiny_csv, tmp_path):
    """A smoke run at toy size (its figures mean nothing here): every section reports. One LSTM
    member, the default's three would triple the time for nothing more to check."""
    out = tmp_path / "bench.json"
    flags = ("--steps", "2", "--repeats", "1", "--members", "1", "--json", out)
    proc = run_script("benchmark.py", "--data", tiny_csv, *flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sections = ("training", "epoch", "language model", "inference", "sub-batching", "profile")
    sections += ("compute",)
    for name in sections + ("notebook inference",):
        assert f"benchmark: {name} measured in " in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(set(lines)) == len(lines), "a log line printed twice"
    figures = json.loads(out.read_text())
    assert figures["train_reviews_per_s"] > 0 and figures["inference_reviews_per_s"]["256"] > 0
    assert figures["language_model_tokens_per_s"]["sampled_softmax"] > 0
    assert "whole serving signature" in figures["profile_batch_256_ms"]
    assert figures["sub_batching"]["sorted_reviews_per_s"] > 0
    assert figures["sub_batching"]["unsorted_reviews_per_s"] > 0
    assert "training:" in proc.stdout and "peak memory:" in proc.stdout
