"""Shared fixtures: a small synthetic IMDB-like corpus and one tiny model trained on it by the
real CLI."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "imdb" / "imdb_50k_split.csv.gz"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Hermetic: no test downloads the counterfactual pairs; tests that train on pairs give tiny_pairs.
os.environ["IMDB_SENTIMENT_COUNTERFACTUALS"] = "none"
SHARED_PAIRS = ROOT.parent / "shared" / "data" / "cad"

POSITIVE = [
    "wonderful",
    "excellent",
    "moving",
    "brilliant",
    "superb",
    "delightful",
    "great",
    "beautiful",
]
NEGATIVE = ["awful", "boring", "terrible", "dull", "horrible", "pointless", "bad", "worst"]
FILLER = [
    "the",
    "film",
    "plot",
    "actors",
    "story",
    "director",
    "scenes",
    "music",
    "ending",
    "cast",
    "was",
    "and",
    "a",
    "it",
    "this",
    "movie",
    "with",
    "of",
    "in",
    "had",
]


def graph_nodes(version: Path) -> list:
    """Every node of an export's graphs and of their function libraries (every signature's body,
    loops' and conds' bodies included)."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((Path(version) / "saved_model.pb").read_bytes())
    graphs = [meta.graph_def for meta in sm.meta_graphs]
    return [
        *(n for g in graphs for n in g.node),
        *(n for g in graphs for f in g.library.function for n in f.node_def),
    ]


def graph_ops(version: Path) -> set[str]:
    return {node.op for node in graph_nodes(version)}


def synthetic_reviews(n: int, seed: int) -> pd.DataFrame:
    """Reviews whose sentiment is carried by a few words among filler, with HTML as IMDB has it."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = [rng.choice(FILLER) for _ in range(rng.randint(8, 60))]
        for _ in range(rng.randint(2, 4)):
            words.insert(
                rng.randrange(len(words) + 1), rng.choice(POSITIVE if positive else NEGATIVE)
            )
        body = " ".join(words)
        cut = rng.randrange(len(body))
        rows.append(
            (
                body[:cut] + "<br /><br />" + body[cut:] + rng.choice([".", "!", "..."]),
                "positive" if positive else "negative",
            )
        )
    return pd.DataFrame(rows, columns=["review", "sentiment"])


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> Path:
    train = synthetic_reviews(480, seed=1).assign(split="train")
    test = synthetic_reviews(160, seed=2).assign(split="test")
    path = tmp_path_factory.mktemp("data") / "tiny.csv.gz"
    pd.concat([train, test]).to_csv(path, index=False)
    return path


def flipped(review: str) -> str:
    """A minimal edit of a synthetic review: each polar word swapped for its opposite."""
    swap = dict(zip(POSITIVE, NEGATIVE)) | dict(zip(NEGATIVE, POSITIVE))
    return " ".join(swap.get(word, word) for word in review.split(" "))


def write_pairs(path: Path, originals: pd.DataFrame) -> None:
    """A paired TSV as the counterfactual release has it: each original and its flipped edit."""
    rows = []
    for i, (review, sentiment) in enumerate(zip(originals.review, originals.sentiment)):
        other = "negative" if sentiment == "positive" else "positive"
        rows += [(sentiment.title(), review, i), (other.title(), flipped(review), i)]
    pd.DataFrame(rows, columns=["Sentiment", "Text", "batch_id"]).to_csv(
        path, sep="\t", index=False
    )


@pytest.fixture(scope="session")
def tiny_pairs(tmp_path_factory, tiny_csv) -> Path:
    """Counterfactual pairs of the tiny data: training pairs from its first 60 training reviews,
    dev pairs from the next 20."""
    folder = tmp_path_factory.mktemp("cad")
    reviews = pd.read_csv(tiny_csv)
    train = reviews[reviews.split == "train"]
    write_pairs(folder / "train_paired.tsv", train.iloc[:60])
    write_pairs(folder / "dev_paired.tsv", train.iloc[60:80])
    return folder


# Pieces of review text that tokenization must get right: contractions, quotes and apostrophes,
# markup, entities (also escaped twice, numeric and malformed), Unicode spaces, marks and cases.
TEXT_PIECES = [
    "don't",
    "film's",
    "I'd've",
    "can't",
    "n't",
    "'s",
    "'d",
    "s",
    "re",
    "'",
    "''",
    '"',
    "“",
    "`",
    "&amp;",
    "&lt;i&gt;",
    "&amp;lt;b&amp;gt;",
    "&quot;",
    "&#39;",
    "&apos;",
    "&#8230;",
    "&nbsp;",
    "&and;",
    "<br />",
    "<i>",
    "</i>",
    "<!-- x -->",
    "<3",
    "&",
    "<",
    ">",
    ";",
    " ",
    "\t",
    "\n",
    "\v",
    "\u00a0",
    "\u2003",
    "Amélie",
    "İ",
    "ß",
    "Σ",
    "—",
    "…",
    "\u0301",
    "O'Brien",
    "rock'n'roll",
    "wonderful",
    "awful",
    "film",
    "plot",
    ".",
    ",",
]
# Reviews made of those pieces and of any short text, so each meets the others and any Unicode.
review_texts = st.lists(
    st.one_of(st.sampled_from(TEXT_PIECES), st.text(max_size=4)), max_size=30
).map("".join)

TINY_CONFIG = {
    "vocab_size": 2000,
    "min_count": 1,
    "max_len": 64,
    "head_tokens": 16,
    "lstm_units": 8,
    "lstm_members": 1,  # members are tested where they matter; three would triple every run
    "batch_size": 32,
    "epochs": 6,
    "patience": 6,
    "learning_rate": 0.01,
    "dropout": 0.1,
    "ngram_buckets": 4096,
}


# A GPU run's precision on a CPU: the policy train.setup_devices sets on a GPU, set before a script.
MIXED_PRECISION = (
    "import runpy, sys, keras\n"
    "keras.mixed_precision.set_global_policy('mixed_float16')\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def script_command(name: str, *args, mixed_precision: bool = False) -> list[str]:
    python = [sys.executable, "-c", MIXED_PRECISION] if mixed_precision else [sys.executable]
    return [*python, str(ROOT / "scripts" / name), *map(str, args)]


def run_script(
    name: str,
    *args,
    input: str | None = None,
    env: dict | None = None,
    timeout=600,
    mixed_precision: bool = False,
):
    return subprocess.run(
        script_command(name, *args, mixed_precision=mixed_precision),
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def run_main(main, *args, input: str | None = None) -> subprocess.CompletedProcess:
    """A command's main(argv) run in this process as its script runs it (cli.run: a user error
    ends with its exit code, never a traceback), for a test that a process of its own would tell
    nothing more: its exit code, stdout and stderr (the package's log included), as run_script
    gives them; `input` is its stdin. A real process is still needed where TensorFlow's start-up
    matters (threads per op, its notices), or signals, or a fresh interpreter. The package's log is
    set back as it was afterwards, for caplog in the tests after."""
    import io
    import logging
    from contextlib import ExitStack, redirect_stderr, redirect_stdout
    from unittest import mock

    from imdb_sentiment import cli

    logger = logging.getLogger("imdb_sentiment")
    saved = logger.handlers[:], logger.level, logger.propagate
    out, err, code = io.StringIO(), io.StringIO(), None
    try:
        with ExitStack() as stack:
            stack.enter_context(redirect_stdout(out))
            stack.enter_context(redirect_stderr(err))
            if input is not None:
                stack.enter_context(mock.patch("sys.stdin", io.StringIO(input)))
            cli.run(lambda: main([str(a) for a in args]))
    except SystemExit as e:  # cli.run always ends so
        code = e.code
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    return subprocess.CompletedProcess(args, code or 0, out.getvalue(), err.getvalue())


def train_tiny(
    base: Path, data: Path, *extra, mixed_precision: bool = False, config: dict | None = None
) -> dict:
    """A real training run of the tiny config (updated with `config`) through scripts/train.py
    into base; its folders."""
    cfg = base / "tiny_config.json"
    cfg.write_text(json.dumps({**TINY_CONFIG, **(config or {})}))
    run_dir, models = base / "run", base / "models"
    flags = {"--data": data, "--config": cfg, "--seed": 7, "--run-dir": run_dir}
    proc = run_script(
        "train.py",
        *(str(x) for pair in flags.items() for x in pair),
        "--export-dir",
        models,
        *extra,
        mixed_precision=mixed_precision,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {
        "run_dir": run_dir,
        "models": models,
        "version": models / "1",
        "stdout": proc.stdout,
        "stderr": proc.stderr,
    }


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_csv, tiny_pairs):
    """One real training run through scripts/train.py; returns its folders. Under pytest-xdist
    the workers share the one run: the first to need it trains while the others wait for it
    (every worker's tiny data holds the same reviews). No test writes into it."""

    def train(base: Path) -> dict:
        return train_tiny(base, tiny_csv, "--compare-baseline", "--counterfactuals", tiny_pairs)

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return train(tmp_path_factory.mktemp("trained"))
    import fcntl

    shared = tmp_path_factory.getbasetemp().parent  # this session's, above every worker's
    done = shared / "trained.json"
    with open(shared / "trained.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until the file is closed
        if not done.exists():
            base = shared / f"trained-{worker}"  # a failed try leaves the next worker its own
            base.mkdir()
            run = train(base)
            done.write_text(json.dumps({k: str(v) for k, v in run.items()}))
    paths = ("run_dir", "models", "version")
    return {k: Path(v) if k in paths else v for k, v in json.loads(done.read_text()).items()}


@pytest.fixture(scope="session")
def sleeper(tmp_path_factory):
    """A real SavedModel with the serving signature's contract, made so that a request can take as
    long as asked and a model can fail at run time: each review is a number of seconds (a batch
    takes its largest), and a review that is no number fails inside TensorFlow."""
    import tensorflow as tf

    class Sleeper(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="review")])
        def serve(self, review):
            seconds = tf.strings.to_number(review)
            start = tf.timestamp()
            wait = tf.cast(tf.reduce_max(seconds), tf.float64)
            spins = tf.while_loop(lambda i: tf.timestamp() - start < wait, lambda i: i + 1, [0])
            probability = tf.sigmoid(seconds) + 0.0 * tf.cast(spins, tf.float32)
            return {
                "probability": probability,
                "label": tf.where(probability >= 0.5, "positive", "negative"),
            }

    base = tmp_path_factory.mktemp("sleeper") / "imdb_sentiment"
    module = Sleeper()
    tf.saved_model.save(module, str(base / "1"), signatures={"serving_default": module.serve})
    return base


@contextmanager
def serving(models: Path, *args):
    """scripts/serve.py started for real on a free loopback port; yields its URL, process and log
    (the lines it writes to stderr from start-up on, read as they come so its pipe never fills),
    and with --grpc-port its gRPC target ("127.0.0.1:<port>", else None).
    Stopped with SIGTERM on leaving, killed if it does not stop."""
    proc = subprocess.Popen(
        script_command("serve.py", "--model-dir", models, "--port", "0", *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        url, grpc, log = None, None, []
        deadline = time.time() + 120
        while time.time() < deadline and url is None:
            line = proc.stderr.readline()
            if not line:
                break
            log.append(line)
            if line.startswith("gRPC listening on "):
                grpc = line.split()[3]
            if line.startswith("listening on "):
                url = line.split()[2].split("/v1/")[0]
        assert url, "server did not start: " + "".join(log)[-3000:]
        threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
        port = int(url.rsplit(":", 1)[1])
        yield {"url": url, "port": port, "grpc": grpc, "proc": proc, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
