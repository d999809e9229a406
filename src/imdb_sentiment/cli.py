"""What every command shares: its parser with -q/--quiet and -v/--verbose, the package's log on
stderr, a quiet TensorFlow start-up, and user errors without tracebacks."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .config import DEFAULT_EXPORT_DIR
from .files import UserError

log = logging.getLogger(__name__)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# TensorFlow 2.21 prints these C++ notices on every start, each twice, whatever TF_CPP_MIN_LOG_LEVEL
# says. Each is matched whole, so that any other line (a real error) still reaches the user.
_STARTUP_NOTICES = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:. ]+\d+ (?:"
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\."
    r"|cuda_platform\.cc:\d+\] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: "
    r"UNKNOWN ERROR \(303\)"
    r"|port\.cc:\d+\] oneDNN custom operations are on\. .*"
    r"|cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use available CPU "
    r"instructions in performance-critical operations\."
    r"|util\.cc:\d+\] oneDNN supports DT_INT64 only on platforms with AVX-512\. Falling back "
    r"to the default Eigen-based implementation if present\.)"
    r"|To enable the following instructions: [\w ,.-]+, in other operations, "
    r"rebuild TensorFlow with "
    r"the appropriate compiler flags\."
)


@contextmanager
def held_stderr():
    """Runs the block with the process's stderr (file descriptor 2, where C++ code writes) held in a
    temporary file, then passes on every line that is not a known start-up notice."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode("utf-8", "replace").splitlines(keepends=True)
            sys.stderr.write(
                "".join(line for line in lines if not _STARTUP_NOTICES.fullmatch(line.rstrip()))
            )
            sys.stderr.flush()


def load_tensorflow(run_an_op: bool = True, intra_op_threads: int = 0):
    """Imports TensorFlow and Keras and probes the devices (which prints notices of its own) with
    those notices held back. Called once a command knows it needs TensorFlow, so --help stays
    fast.

    run_an_op=False for a process that has yet to make a MultiWorkerMirroredStrategy, which
    refuses to start once TensorFlow has run an op; oneDNN's notice below may then reach its log.
    intra_op_threads > 0 caps the threads one op may use (0: TensorFlow's choice), which can
    only be set before the first op.
    """
    with held_stderr():
        import keras  # noqa: F401  (loads TensorFlow as its backend)
        import tensorflow as tf

        threading = tf.config.threading
        if intra_op_threads and threading.get_intra_op_parallelism_threads() != intra_op_threads:
            try:
                threading.set_intra_op_parallelism_threads(intra_op_threads)
            except RuntimeError:  # a second command in a process that has run TensorFlow
                log.warning(
                    f"TensorFlow is running already: {intra_op_threads} thread(s) per op not set"
                )
        tf.config.list_physical_devices()
        if run_an_op:
            # On some CPUs oneDNN logs, as an error, once per process and at the first int64
            # transpose (the model has some), that it falls back to Eigen: a notice, not an
            # error. Made to come here, where it is held back, rather than mid-command.
            tf.transpose(tf.zeros((1, 1), tf.int64))
    return tf


COMMANDS = {  # command -> module of imdb_sentiment.commands
    "fetch": "fetch",
    "pretrain": "pretrain",
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "batch-predict": "batch_predict",
    "serve": "serve",
    "baseline": "baseline",
    "benchmark": "benchmark",
    "visualize": "visualize",
    "load-test": "load_test",
    "soak": "soak",
}


def usage() -> str:
    lines = ["usage: imdb-sentiment COMMAND [--help] [ARGS...]", "", "commands:"]
    for name, module in COMMANDS.items():
        doc = importlib.import_module(f"imdb_sentiment.commands.{module}").__doc__
        lines.append(f"  {name:<13} {doc.strip().splitlines()[0]}")
    lines += ["", "imdb-sentiment COMMAND --help explains each one."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """The `imdb-sentiment` entry point: runs one command's main with the remaining arguments."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):

        def show_usage() -> int:
            print(usage())
            return 0 if argv else 2  # no command at all is a mistake, if a harmless one

        run(show_usage)
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    command = importlib.import_module(f"imdb_sentiment.commands.{COMMANDS[argv[0]]}")
    sys.argv[0] = f"imdb-sentiment {argv[0]}"  # argparse's prog, in usage lines and errors
    run(lambda: command.main(argv[1:]))


def run(main) -> None:
    try:
        try:
            code = main()
        except SystemExit as e:  # argparse's --help and usage errors end this way
            code = e.code
        # Flushed here, so that a reader gone early (`| head`) is met below and not at exit.
        sys.stdout.flush()
        sys.exit(code)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # e.g. `predict.py ... | head`: the reader has all it wanted
        # What is still buffered for stdout would fail again when Python flushes it at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


class Parser(argparse.ArgumentParser):
    """A command's parser: its module docstring as the description, and the log level flags.
    Parsing the arguments also sets up the log, so each command does it the same way."""

    def __init__(self, description: str | None, **kwargs):
        super().__init__(
            description=description, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs
        )
        level = self.add_mutually_exclusive_group()
        level.add_argument(
            "-q", "--quiet", dest="log_level", action="store_const", const=logging.WARNING,
            default=logging.INFO, help="log only warnings and errors (stderr)",
        )  # fmt: skip
        level.add_argument(
            "-v", "--verbose", dest="log_level", action="store_const", const=logging.DEBUG,
            help="log debugging detail too (stderr)",
        )  # fmt: skip

    def add_model_argument(self) -> None:
        """--model, as every command that uses an exported model takes it."""
        self.add_argument(
            "--model",
            type=Path,
            default=DEFAULT_EXPORT_DIR,
            help="an exported version folder, or the folder of versions (newest used; "
            "default %(default)s)",
        )

    def add_intra_op_threads_argument(self, *names: str) -> None:
        """--intra-op-threads (and any other names, as TF Serving's), as every command that runs
        an exported model takes it."""
        self.add_argument(
            *names,
            "--intra-op-threads",
            dest="intra_op_threads",
            type=int,
            default=1,
            help="threads one TensorFlow op may use, as TF Serving's "
            "--tensorflow_intra_op_parallelism; 0: TensorFlow's choice (one per CPU). With 1 the "
            "LSTMs' small ops run side by side, one per core, rather than each split across "
            "the cores (default %(default)s)",
        )

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if getattr(parsed, "intra_op_threads", 0) < 0:
            self.error("--intra-op-threads must be 0 or more")
        setup_logging(parsed.log_level)
        return parsed


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return (
            message if record.levelno == logging.INFO else f"{record.levelname.lower()}: {message}"
        )


def setup_logging(level: int) -> None:
    """The package's messages go to stderr, one line each, so that stdout carries only results
    (predictions, tables, JSON) and can be piped."""
    logger = logging.getLogger("imdb_sentiment")
    logger.setLevel(level)
    for handler in [h for h in logger.handlers if getattr(h, "_imdb_sentiment", False)]:
        logger.removeHandler(handler)  # a second command in one process sets it up anew
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    handler._imdb_sentiment = True
    logger.addHandler(handler)
    # A library that logs through the root logger gets it a handler of its own (logging's
    # last resort, basicConfig); ours would then be printed twice.
    logger.propagate = False
