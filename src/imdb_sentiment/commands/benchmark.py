"""Speed of the default model on this machine, against the notebooks' way of doing the same work.

Prints, as medians of --repeats runs: training throughput (reviews/s and real tokens/s, padding not
counted) and the time of one full epoch; pretraining throughput (real tokens/s through both
language models, per objective); inference throughput of the exported SavedModel on raw
strings at batch sizes 1, 32 and 256, single-review latency (p50, p99), and on random batches of
256 against the same model padding each batch to its longest review (no sub-batches); FLOPs per
token, achieved GFLOP/s and the machine's own float32 matmul GFLOP/s; the notebooks' way (every
review padded to max_len and tokenized again each epoch; one review at a time through
BeautifulSoup, the tokenizer and model.predict) as ratios; peak memory. --json writes every
figure as one JSON object.

--export-precision measures only the serving speed of a GPU-trained model's two possible exports:
the float16 graph it was exported as before model.as_float32 (mixed_float16 policy), and float32.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imdb_sentiment import cli

if TYPE_CHECKING:
    import keras
    import numpy as np
    import tensorflow as tf

    from imdb_sentiment.config import Config
    from imdb_sentiment.text import Vectorizer

log = logging.getLogger(__name__)


def alternating_seconds(
    fns: dict[str, Callable[[], object]], repeats: int
) -> dict[str, list[float]]:
    """Seconds of each call of each fn, `repeats` rounds in which they take turns, the order
    reversed every other round, so that a machine busy with other work slows each alike.

    Every timing here goes through it; with one fn it is just `repeats` timed calls.
    """
    seconds = {name: [] for name in fns}
    for i in range(repeats):
        for name in sorted(fns, reverse=i % 2 == 1):
            t = time.perf_counter()
            fns[name]()
            seconds[name].append(time.perf_counter() - t)
    return seconds


def serving_rates(
    signatures: dict[str, Callable[..., dict]], batches: list[tf.Tensor], repeats: int
) -> dict[str, list[float]]:
    """reviews/s of each serving signature through all of `batches`, round by round, after one
    call each to trace it; the signatures take turns (alternating_seconds)."""
    for f in signatures.values():
        f(review=batches[0])
    n = sum(int(x.shape[0]) for x in batches)

    def through_all(f):
        return lambda: [f(review=x)["probability"].numpy() for x in batches]

    seconds = alternating_seconds({name: through_all(f) for name, f in signatures.items()}, repeats)
    return {name: [n / s for s in secs] for name, secs in seconds.items()}


def signature(path: Path) -> Callable[..., dict]:
    """The serving signature of the SavedModel written at path."""
    import tensorflow as tf

    return tf.saved_model.load(str(path)).signatures["serving_default"]


def matmul_gflops(m: int, k: int, n: int, repeats: int) -> float:
    """The machine's own float32 matmul speed at shape (m, k) x (k, n): median GFLOP/s."""
    import tensorflow as tf

    a, b = tf.random.normal([m, k]), tf.random.normal([k, n])
    reps = max(1, int(2e9 / (2 * m * k * n)))  # about 2 GFLOP per timing
    f = tf.function(
        lambda: tf.reduce_sum(tf.stack([tf.matmul(a + i, b) for i in range(min(reps, 64))]))
    )
    f()
    loops = max(1, reps // 64)
    seconds = alternating_seconds({"matmul": lambda: [f().numpy() for _ in range(loops)]}, repeats)
    return 2 * m * k * n * min(reps, 64) * loops / statistics.median(seconds["matmul"]) / 1e9


def lstm_flops_per_token(cfg: Config, width: int) -> float:
    """Forward FLOPs per token: the gate matmuls of every LSTM of every member (2 * 4u * (in + u))
    plus ~10u elementwise. width: numbers per token the first LSTM reads (the input matrix's)."""
    flops = 0
    directions = 2 if cfg.bidirectional else 1
    for _ in range(cfg.lstm_layers):
        u = cfg.lstm_units
        flops += directions * (2 * 4 * u * (width + u) + 10 * u)
        width = directions * u
    return float(flops * cfg.lstm_members)


def main(argv=None) -> int:
    args = parse_args(argv)
    cli.load_tensorflow()
    b = Bench.load(args)
    if args.export_precision:
        with section("export precision"):
            e = export_precision(b)
        print(
            f"export, batch of {e['batch']} test reviews, medians of {e['rounds']} rounds: "
            f"float16 {e['float16_reviews_per_s']:.0f} reviews/s, "
            f"float32 {e['float32_reviews_per_s']:.0f} reviews/s"
        )
        return write_figures({**b.about(), "export_precision": e}, args.json)

    r = b.about()
    with section("training"):
        # One model throughout, so that what is served below is what training measured.
        model, lstm = b.fresh_model()
        r.update(training(b, lstm))
    if args.parity_epochs:
        with section("accuracy parity"):
            r["parity"] = parity(b, args.parity_epochs)
    with section("epoch"):
        r["epoch_seconds"] = epoch_seconds(b, lstm)
    with section("language model"):
        r["language_model_tokens_per_s"] = language_model(b)
    with tempfile.TemporaryDirectory() as tmp:
        from imdb_sentiment.export import export

        serve = signature(export(model, b.vec, {"config": b.cfg.to_dict()}, Path(tmp)))
        with section("inference"):
            r.update(inference(b, serve))
        with section("sub-batching"):
            r["sub_batching"] = sub_batching(b, model, serve, Path(tmp) / "unsorted")
        with section("profile"):
            r["profile_batch_256_ms"] = profile(b, model, serve)
    with section("notebook inference"):
        r["notebook_inference_reviews_per_s"] = notebook_inference(b, model)
    with section("compute"):
        r.update(
            compute(
                b,
                train_tokens_per_s=r["train_real_tokens_per_s"],
                inference_per_s=r["inference_reviews_per_s"]["256"],
                notebook_inference_per_s=r["notebook_inference_reviews_per_s"],
            )
        )
    r.update(
        peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        repeats=args.repeats,
        steps=args.steps,
    )
    print(summary(r))
    return write_figures(r, args.json)


def parse_args(argv):
    p = cli.Parser(__doc__)
    p.add_argument("--data", help="same sources as train.py (default: found as train.py finds it)")
    p.add_argument(
        "--steps",
        type=int,
        default=40,
        help="measured training steps per repeat (default %(default)s)",
    )
    p.add_argument("--repeats", type=int, default=3, help="repeats per figure; medians are printed")
    p.add_argument(
        "--max-rows",
        type=int,
        help="use at most N rows of each split (a quick check, not a benchmark)",
    )
    p.add_argument(
        "--members",
        type=int,
        help="LSTM members of the measured model (default: the config's); 1 times one "
        "BiLSTM, the size PyTorch's peer (../shared/tools/peer_torch_lstm.py) runs",
    )
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument(
        "--parity-epochs",
        type=int,
        default=0,
        help="also train the model both ways for N full epochs and compare validation accuracy "
        "(default off)",
    )
    p.add_argument(
        "--export-precision",
        action="store_true",
        help="only compare the float16 and float32 exports of one model on 256 test "
        "reviews (medians of --repeats alternating rounds)",
    )
    args = p.parse_args(argv)
    if args.members is not None and args.members < 1:
        p.error("--members must be 1 or more")
    return args


@contextmanager
def section(name: str):
    """One named part of the benchmark; its own duration goes to the log."""
    t = time.perf_counter()
    yield
    log.info(f"benchmark: {name} measured in {time.perf_counter() - t:.0f}s")


@dataclass(frozen=True)
class Bench:
    """What the sections measure on, all computed by load before any of them runs. The measured
    model is not here: main builds it (fresh_model) and hands it to the sections that time it."""

    cfg: Config
    vec: Vectorizer
    reviews: list[str]  # training
    feats: dict[str, tf.RaggedTensor]  # the training reviews' token ids
    labels: np.ndarray
    matrix: np.ndarray  # the frozen vectors the LSTM reads, one row per token id
    val_reviews: list[str]  # inference and parity: only timed or compared, nothing is chosen
    val_labels: np.ndarray
    test_reviews: list[str]  # --export-precision: only timed
    steps: int
    repeats: int

    @classmethod
    def load(cls, args: argparse.Namespace) -> Bench:
        import keras

        from imdb_sentiment import data, text
        from imdb_sentiment.config import Config
        from imdb_sentiment.train import input_vectors

        cfg = Config(max_rows=args.max_rows)
        if args.members:
            cfg = dataclasses.replace(cfg, lstm_members=args.members)
        keras.utils.set_random_seed(cfg.seed)
        splits = data.load(args.data, cfg)
        tokens, vocabulary = text.training_vocabulary(splits.train.review, cfg)
        vec = text.Vectorizer.from_config(vocabulary, cfg)
        # Training fits the LSTM part alone (the n-gram bag is a logistic regression fitted outside
        # the network), so training is measured on token ids; inference runs the whole model. The
        # bag's weights stay 0 here: its cost, a gather and a sum, does not depend on their values.
        feats = {"token_ids": vec.features(tokens)["token_ids"]}
        labels = splits.train.label.to_numpy()
        matrix, _ = input_vectors(vec.vocabulary, cfg, feats["token_ids"], labels)
        return cls(
            cfg=cfg,
            vec=vec,
            reviews=splits.train.review.tolist(),
            feats=feats,
            labels=labels,
            matrix=matrix,
            val_reviews=splits.val.review.tolist(),
            val_labels=splits.val.label.to_numpy(),
            test_reviews=splits.test.review.tolist(),
            steps=args.steps,
            repeats=args.repeats,
        )

    def fresh_model(self) -> tuple[keras.Model, keras.Model]:
        """A new default model, and its LSTM part compiled for training."""
        import tensorflow as tf

        from imdb_sentiment.train import build_compiled_model

        return build_compiled_model(
            self.cfg, self.matrix, self.feats, tf.distribute.get_strategy()
        )[:2]

    def notebook_dataset(self) -> tf.data.Dataset:
        """The notebooks' way: tokenize raw text again every epoch, pad every review to max_len,
        no cache."""
        import tensorflow as tf

        cfg, vec = self.cfg, self.vec

        def notebook_batch(t, y):
            ids = vec(t)["token_ids"]
            padded = tf.pad(ids, [[0, 0], [0, cfg.max_len - tf.shape(ids)[1]]])
            return {"token_ids": padded[:, : cfg.max_len]}, y

        return (
            tf.data.Dataset.from_tensor_slices((self.reviews, self.labels.astype("float32")))
            .shuffle(len(self.reviews))
            .batch(cfg.batch_size)
            .map(notebook_batch)
        )

    def about(self) -> dict:
        """The machine and the config the figures were measured with."""
        import tensorflow as tf

        return {
            "machine": {
                "cores": os.cpu_count(),
                "platform": platform.platform(),
                "tensorflow": tf.__version__,
                "gpus": [g.name for g in tf.config.list_physical_devices("GPU")],
            },
            "config": self.cfg.to_dict(),
        }


def train_rate(b: Bench, ds: tf.data.Dataset, model: keras.Model) -> tuple[float, float]:
    """reviews/s and real tokens/s over --steps steps, after 5 warm-up steps (tracing)."""
    import numpy as np

    it = iter(ds.repeat())
    for _ in range(5):
        model.train_on_batch(*next(it))
    batches = [next(it) for _ in range(b.steps)]
    n = sum(int(y.shape[0]) for _, y in batches)
    toks = sum(int(np.count_nonzero(x["token_ids"])) for x, _ in batches)
    steps = {"train": lambda: [model.train_on_batch(x, y) for x, y in batches]}
    sec = statistics.median(alternating_seconds(steps, b.repeats)["train"])
    return n / sec, toks / sec


def training(b: Bench, lstm: keras.Model) -> dict:
    """Training throughput of lstm on our batches (ids computed once, cached, length-bucketed)
    against a fresh copy fed the notebooks' way: reviews/s, real tokens/s and the speed-up."""
    from imdb_sentiment.train import make_dataset

    rps, tps = train_rate(b, make_dataset(b.feats, b.labels, b.cfg, training=True), lstm)
    log.info(f"train (ours): {rps:.0f} reviews/s, {tps:.0f} real tokens/s")
    nb_rps, nb_tps = train_rate(b, b.notebook_dataset(), b.fresh_model()[1])
    log.info(f"train (notebook way): {nb_rps:.0f} reviews/s, {nb_tps:.0f} real tokens/s")
    return {
        "train_reviews_per_s": rps,
        "train_real_tokens_per_s": tps,
        "notebook_train_reviews_per_s": nb_rps,
        "notebook_train_real_tokens_per_s": nb_tps,
        "train_speedup_vs_notebook": tps / nb_tps,
    }


def parity(b: Bench, epochs: int) -> dict:
    """The speed-ups must not cost accuracy: the same model trained `epochs` full epochs both
    ways; validation accuracy per epoch, seconds, and the final difference in points."""
    import keras

    from imdb_sentiment import text
    from imdb_sentiment.model import build_model, compile_model, lstm_model
    from imdb_sentiment.train import make_dataset, steps_per_epoch

    cfg = dataclasses.replace(b.cfg, epochs=epochs)
    val_ids = b.vec.features(text.tokenize_corpus(b.val_reviews))["token_ids"]
    val_ds = make_dataset({"token_ids": val_ids}, b.val_labels, cfg, training=False)
    result = {}
    for way, ds, steps in (
        (
            "ours",
            make_dataset(b.feats, b.labels, cfg, training=True),
            steps_per_epoch(b.feats, cfg),
        ),
        ("notebook way", b.notebook_dataset(), None),
    ):
        keras.utils.set_random_seed(cfg.seed)
        steps_for_schedule = steps or -(-len(b.reviews) // cfg.batch_size)
        m = compile_model(lstm_model(build_model(cfg, b.matrix)), cfg, steps_for_schedule)
        t = time.perf_counter()
        h = m.fit(ds, validation_data=val_ds, epochs=cfg.epochs, steps_per_epoch=steps, verbose=0)
        accuracy = h.history["val_accuracy"]
        result[way] = {"val_accuracy_per_epoch": accuracy, "seconds": time.perf_counter() - t}
        log.info(
            f"parity ({way}): validation accuracy per epoch {[round(a, 4) for a in accuracy]}, "
            f"{result[way]['seconds']:.0f}s"
        )
    result["difference_points"] = 100 * (
        result["ours"]["val_accuracy_per_epoch"][-1]
        - result["notebook way"]["val_accuracy_per_epoch"][-1]
    )
    return result


def epoch_seconds(b: Bench, lstm: keras.Model) -> float:
    """Seconds lstm takes to train one full epoch of the training reviews, dataset included."""
    from imdb_sentiment.train import make_dataset

    t = time.perf_counter()
    ds = make_dataset(b.feats, b.labels, b.cfg, training=True, first_epoch=b.cfg.epochs - 1)
    lstm.fit(ds, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - t
    log.info(f"train: one epoch of {len(b.reviews)} reviews in {seconds:.1f}s")
    return seconds


def language_model(b: Bench) -> dict:
    """Pretraining's speed: real tokens/s through both language models (forward and backward
    LSTM, each with its output layer), by objective, on the training reviews."""
    import numpy as np

    from imdb_sentiment.model import adam
    from imdb_sentiment.pretrain import LanguageModels
    from imdb_sentiment.train import make_dataset

    rates = {}
    for objective in ("glove_cosine", "sampled_softmax"):
        cfg = dataclasses.replace(
            b.cfg, pretrain_objective=objective, batch_size=b.cfg.pretrain_batch_size
        )
        model = LanguageModels(cfg, b.matrix)
        model.compile(optimizer=adam(cfg, cfg.pretrain_learning_rate, 1000))
        ds = make_dataset(b.feats, np.zeros(len(b.labels)), cfg, training=True)
        _, rates[objective] = train_rate(b, ds, model)
        log.info(f"language model ({objective}): {rates[objective]:.0f} real tokens/s")
    return rates


def inference(b: Bench, serve: Callable[..., dict]) -> dict:
    """The exported SavedModel on raw strings: reviews/s by batch size, one review's latency."""
    import numpy as np
    import tensorflow as tf

    rates = {}
    for bs in (1, 32, 256):
        batches = [
            tf.constant(b.val_reviews[i : i + bs])
            for i in range(0, min(len(b.val_reviews), max(64 * bs, 1024)), bs)
        ][: max(8, 2048 // bs)]
        rates[bs] = statistics.median(serving_rates({"serve": serve}, batches, b.repeats)["serve"])
        log.info(f"inference: batch {bs}: {rates[bs]:.0f} reviews/s")
    latency = []
    for review in b.val_reviews[:300]:
        t = time.perf_counter()
        serve(review=tf.constant([review]))["probability"].numpy()
        latency.append((time.perf_counter() - t) * 1000)
    p50, p99 = float(np.percentile(latency, 50)), float(np.percentile(latency, 99))
    log.info(f"latency (one review): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    return {
        "inference_reviews_per_s": {str(k): v for k, v in rates.items()},
        "latency_ms_p50": p50,
        "latency_ms_p99": p99,
    }


def sub_batching(
    b: Bench, model: keras.Model, serve: Callable[..., dict], unsorted_dir: Path
) -> dict:
    """reviews/s of the export on random batches of 256 validation reviews: its signature (length-
    sorted sub-batches, BlockLSTMV2) against the same model exported as before, each batch padded
    to its longest review through Keras's LSTM loop. The two take turns, --repeats rounds."""
    import numpy as np
    import tensorflow as tf

    from imdb_sentiment.export import SUB_BATCH, serving_archive
    from imdb_sentiment.model import as_float32

    serving_archive(as_float32(model, cudnn=False), b.vec, sub_batch=0, kernel=False).write_out(
        str(unsorted_dir), verbose=False
    )
    rng = np.random.default_rng(b.cfg.seed)
    sample = b.val_reviews
    picks = [rng.choice(len(sample), 256, replace=len(sample) < 256) for _ in range(8)]
    batches = [tf.constant([sample[i] for i in pick]) for pick in picks]
    ways = {"sorted": serve, "unsorted": signature(unsorted_dir)}
    rates = serving_rates(ways, batches, b.repeats)
    sorted_rate, unsorted_rate = (statistics.median(rates[w]) for w in ("sorted", "unsorted"))
    log.info(
        f"sub-batching (batches of 256, sub-batches of {SUB_BATCH}): {sorted_rate:.0f} reviews/s, "
        f"unsorted {unsorted_rate:.0f} reviews/s, {sorted_rate / unsorted_rate:.2f}x"
    )
    return {
        "sub_batch": SUB_BATCH,
        "reviews_per_s_by_round": rates,
        "sorted_reviews_per_s": sorted_rate,
        "unsorted_reviews_per_s": unsorted_rate,
        "speedup": sorted_rate / unsorted_rate,
    }


def profile(b: Bench, model: keras.Model, serve: Callable[..., dict]) -> dict:
    """Where one batch of 256 goes, stage by stage, and whether XLA speeds up the model part:
    median ms per stage, None where a stage failed."""
    import tensorflow as tf

    from imdb_sentiment import text

    batch = tf.constant(b.val_reviews[:256])
    vectorize = tf.function(lambda x: b.vec(x))
    feats = vectorize(batch)

    def forward(f):
        return model(f, training=False)

    stages = {
        "standardize (regex ops)": (tf.function(text.standardize), batch),
        "vectorize (standardize, split, lookup, n-gram hashing)": (vectorize, batch),
        "model forward": (tf.function(forward), feats),
        "model forward, XLA (jit_compile)": (tf.function(forward, jit_compile=True), feats),
        "whole serving signature": (lambda x: serve(review=x)["probability"].numpy(), batch),
    }
    ms = {}
    for name, (f, x) in stages.items():
        try:
            f(x)
            seconds = alternating_seconds({name: lambda: [f(x) for _ in range(5)]}, b.repeats)
            ms[name] = statistics.median(seconds[name]) / 5 * 1000
        except Exception as e:  # XLA may not compile every op on every machine
            ms[name] = None
            log.info(f"profile: {name} failed: {type(e).__name__}: {str(e)[:200]}")
        figure = f"{ms[name]:.1f} ms" if ms[name] is not None else "failed"
        log.info(f"profile, one batch of 256: {name}: {figure}")
    return ms


def notebook_inference(b: Bench, model: keras.Model) -> float:
    """The notebooks' way of predicting: one review at a time, BeautifulSoup + tokenizer +
    model.predict; reviews/s."""
    import tensorflow as tf

    from imdb_sentiment.data import strip_html

    def predict_one(review):
        return model.predict(b.vec(tf.constant([strip_html(review)])), verbose=0)

    predict_one(b.val_reviews[0])
    one_by_one = {"predict": lambda: [predict_one(x) for x in b.val_reviews[:50]]}
    rate = 50 / statistics.median(alternating_seconds(one_by_one, b.repeats)["predict"])
    log.info(f"inference (notebook way, one at a time): {rate:.1f} reviews/s")
    return rate


def export_precision(b: Bench) -> dict:
    """reviews/s of one batch of 256 test reviews through the float16 and the float32 export of
    the same weights, 5 calls a round; the two take turns, --repeats rounds."""
    import keras
    import tensorflow as tf

    from imdb_sentiment.export import export, serving_archive
    from imdb_sentiment.model import build_model

    keras.mixed_precision.set_global_policy("mixed_float16")  # as train.setup_devices on a GPU
    try:
        model = build_model(b.cfg, b.matrix)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    batch = tf.constant(b.test_reviews[:256])
    with tempfile.TemporaryDirectory() as tmp:
        # export() wrote the float16 graph this way before it called model.as_float32
        serving_archive(model, b.vec).write_out(f"{tmp}/float16", verbose=False)
        float32 = export(model, b.vec, {"config": b.cfg.to_dict()}, Path(tmp) / "float32")
        ways = {"float16": signature(Path(tmp) / "float16"), "float32": signature(float32)}
        rates = serving_rates(ways, [batch] * 5, b.repeats)
    return {
        "batch": int(batch.shape[0]),
        "rounds": b.repeats,
        "reviews_per_s_by_round": rates,
        **{f"{name}_reviews_per_s": statistics.median(r) for name, r in rates.items()},
    }


def compute(
    b: Bench, train_tokens_per_s: float, inference_per_s: float, notebook_inference_per_s: float
) -> dict:
    """FLOPs per token, the GFLOP/s training (at train_tokens_per_s) and inference (at
    inference_per_s, batches of 256) reach, and the machine's own matmul GFLOP/s at the LSTM's
    shape and at 2048^3, to read them against; inference's speed-up over the notebooks' way."""
    import numpy as np

    from imdb_sentiment import text

    cfg = b.cfg
    lengths = text.tokenize_corpus(b.val_reviews[:2048]).row_lengths().numpy()
    tokens_per_review = float(np.mean(np.minimum(lengths, cfg.max_len)))
    width = b.matrix.shape[1]  # GloVe, and the word polarity column when it is on
    fwd = lstm_flops_per_token(cfg, width)
    shape = (cfg.batch_size, width + cfg.lstm_units, 4 * cfg.lstm_units)
    mm_lstm = matmul_gflops(*shape, b.repeats)
    mm_large = matmul_gflops(2048, 2048, 2048, b.repeats)
    train_gflops = train_tokens_per_s * 3 * fwd / 1e9  # backward: about twice forward
    infer_gflops = inference_per_s * tokens_per_review * fwd / 1e9
    return {
        "inference_speedup_vs_notebook": inference_per_s / notebook_inference_per_s,
        "flops_per_token_forward": fwd,
        "tokens_per_review": tokens_per_review,
        "train_gflops": train_gflops,
        "inference_gflops": infer_gflops,
        "matmul_gflops_lstm_shape": mm_lstm,
        "matmul_gflops_2048": mm_large,
        "train_utilization_of_large_matmul": train_gflops / mm_large,
        "inference_utilization_of_large_matmul": infer_gflops / mm_large,
    }


def summary(r: dict) -> str:
    """The printed report: a line per section of the figures r, parity's only when it ran."""
    infer = r["inference_reviews_per_s"]
    lines = [
        f"\nmachine: {r['machine']['cores']} cores, TensorFlow {r['machine']['tensorflow']}, "
        f"GPUs: {r['machine']['gpus'] or 'none'}",
        f"training: {r['train_reviews_per_s']:.0f} reviews/s, "
        f"{r['train_real_tokens_per_s']:.0f} real tokens/s; one epoch {r['epoch_seconds']:.0f}s; "
        f"{r['train_speedup_vs_notebook']:.2f}x the notebook way "
        f"({r['notebook_train_real_tokens_per_s']:.0f} real tokens/s)",
        "pretraining (both directions): "
        + ", ".join(
            f"{k} {v:.0f} real tokens/s" for k, v in r["language_model_tokens_per_s"].items()
        ),
        "inference: "
        + ", ".join(f"batch {k}: {v:.0f}/s" for k, v in infer.items())
        + f"; latency p50 {r['latency_ms_p50']:.1f} ms, p99 {r['latency_ms_p99']:.1f} ms; "
        f"{r['inference_speedup_vs_notebook']:.0f}x the notebook way "
        f"({r['notebook_inference_reviews_per_s']:.1f}/s)",
        f"sub-batching: random batches of 256 in length-sorted sub-batches of "
        f"{r['sub_batching']['sub_batch']}: {r['sub_batching']['sorted_reviews_per_s']:.0f} "
        f"reviews/s, {r['sub_batching']['speedup']:.2f}x the batch padded to its longest through "
        f"Keras's LSTM loop ({r['sub_batching']['unsorted_reviews_per_s']:.0f} reviews/s)",
        f"compute: {r['flops_per_token_forward'] / 1e3:.1f} kFLOP/token forward; training "
        f"{r['train_gflops']:.2f} GFLOP/s, inference {r['inference_gflops']:.2f} GFLOP/s; matmul "
        f"{r['matmul_gflops_lstm_shape']:.1f} GFLOP/s at the LSTM's shape, "
        f"{r['matmul_gflops_2048']:.1f} GFLOP/s at 2048^3; utilization "
        f"{r['train_utilization_of_large_matmul']:.1%} (training), "
        f"{r['inference_utilization_of_large_matmul']:.1%} (inference)",
        "one batch of 256, ms: "
        + "; ".join(
            f"{k} {v:.1f}" if v is not None else f"{k} failed"
            for k, v in r["profile_batch_256_ms"].items()
        ),
    ]
    if "parity" in r:
        lines.append(
            f"accuracy parity after {len(r['parity']['ours']['val_accuracy_per_epoch'])} epochs: "
            f"validation {r['parity']['ours']['val_accuracy_per_epoch'][-1]:.4f} (ours) vs "
            f"{r['parity']['notebook way']['val_accuracy_per_epoch'][-1]:.4f} (notebook way), "
            f"difference {r['parity']['difference_points']:+.2f} points"
        )
    lines.append(f"peak memory: {r['peak_memory_mb']:.0f} MB")
    return "\n".join(lines)


def write_figures(r: dict, path: Path | None) -> int:
    """Writes the figures r as JSON to path when there is one; the command's exit status."""
    if path:
        from imdb_sentiment.files import write_json

        write_json(path, r)
    return 0
