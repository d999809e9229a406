"""The benchmark's measurements (scripts/benchmark.py): each section a function of the Bench it
measures on, each returning its figures as a record; `measure` runs them in order on one model,
`measure_export_precision` alone. Every timing goes through alternating_seconds."""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from . import data, text
from .config import Config
from .data import strip_html
from .export import SUB_BATCH, export, serving_archive
from .model import adam, as_float32, build_model, compile_model, lstm_model
from .pretrain import LanguageModels
from .train import (
    LstmRows,
    build_compiled_model,
    cpu_features,
    input_vectors,
    make_dataset,
    steps_per_epoch,
)

log = logging.getLogger(__name__)


# The figures, as --json writes them


class Section:
    """A section's figures, a dataclass; to_dict gives them as --json writes them."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Figures(Section):
    """All the figures of one benchmark: each field under its name, but the sections named in
    `inline`, whose figures sit at the top level of the JSON; None fields left out."""

    inline: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Section):
                value = value.to_dict()
            if field.name in self.inline:
                out.update(value)
            elif value is not None:
                out[field.name] = value
        return out


@dataclass
class Machine(Section):
    cores: int | None
    cpu_features: list[str]  # train.SPEED_FEATURES it has
    platform: str
    tensorflow: str
    gpus: list[str]


@dataclass
class About(Section):
    """The machine and the config the figures were measured with."""

    machine: Machine
    config: dict


@dataclass
class Training(Section):
    """Training throughput of our batches and of the notebooks' way."""

    train_reviews_per_s: float
    train_real_tokens_per_s: float
    notebook_train_reviews_per_s: float
    notebook_train_real_tokens_per_s: float
    train_speedup_vs_notebook: float


@dataclass
class ParityRun(Section):
    """One way of training in the parity check."""

    val_accuracy_per_epoch: list[float]
    seconds: float


@dataclass
class Parity(Section):
    """The same model trained both ways for the same epochs."""

    ours: ParityRun
    notebook: ParityRun

    @property
    def difference_points(self) -> float:
        ours, notebook = self.ours.val_accuracy_per_epoch, self.notebook.val_accuracy_per_epoch
        return 100 * (ours[-1] - notebook[-1])

    def to_dict(self) -> dict:
        return {
            "ours": self.ours.to_dict(),
            "notebook way": self.notebook.to_dict(),
            "difference_points": self.difference_points,
        }


@dataclass
class Inference(Section):
    inference_reviews_per_s: dict[int, float]  # by batch size
    latency_ms_p50: float
    latency_ms_p99: float


@dataclass
class SubBatching(Section):
    sub_batch: int
    reviews_per_s_by_round: dict[str, list[float]]  # "sorted", "unsorted"
    sorted_reviews_per_s: float
    unsorted_reviews_per_s: float
    speedup: float


@dataclass
class Compute(Section):
    inference_speedup_vs_notebook: float
    flops_per_token_forward: float
    tokens_per_review: float
    train_gflops: float
    inference_gflops: float
    matmul_gflops_lstm_shape: float
    matmul_gflops_2048: float
    train_utilization_of_large_matmul: float
    inference_utilization_of_large_matmul: float


@dataclass
class Speed(Figures):
    """Every section's figures but --export-precision's."""

    inline: ClassVar[tuple[str, ...]] = ("about", "training", "inference", "compute")

    about: About
    training: Training
    parity: Parity | None  # only with --parity-epochs
    epoch_seconds: float
    language_model_tokens_per_s: dict[str, float]  # by objective
    inference: Inference
    sub_batching: SubBatching
    profile_batch_256_ms: dict[str, float | None]  # by stage; None: it failed
    notebook_inference_reviews_per_s: float
    compute: Compute
    peak_memory_mb: float
    repeats: int
    steps: int

    def summary(self) -> str:
        """The printed report: a line per section, parity's only when it ran."""
        t, i, s, c = self.training, self.inference, self.sub_batching, self.compute
        lines = [
            f"\nmachine: {self.about.machine.cores} cores "
            f"({', '.join(self.about.machine.cpu_features) or 'no AVX2'}), TensorFlow "
            f"{self.about.machine.tensorflow}, GPUs: {self.about.machine.gpus or 'none'}",
            f"training: {t.train_reviews_per_s:.0f} reviews/s, "
            f"{t.train_real_tokens_per_s:.0f} real tokens/s; one epoch {self.epoch_seconds:.0f}s; "
            f"{t.train_speedup_vs_notebook:.2f}x the notebook way "
            f"({t.notebook_train_real_tokens_per_s:.0f} real tokens/s)",
            "pretraining (both directions): "
            + ", ".join(
                f"{k} {v:.0f} real tokens/s" for k, v in self.language_model_tokens_per_s.items()
            ),
            "inference: "
            + ", ".join(f"batch {k}: {v:.0f}/s" for k, v in i.inference_reviews_per_s.items())
            + f"; latency p50 {i.latency_ms_p50:.1f} ms, p99 {i.latency_ms_p99:.1f} ms; "
            f"{c.inference_speedup_vs_notebook:.0f}x the notebook way "
            f"({self.notebook_inference_reviews_per_s:.1f}/s)",
            f"sub-batching: random batches of 256 in length-sorted sub-batches of "
            f"{s.sub_batch}: {s.sorted_reviews_per_s:.0f} reviews/s, {s.speedup:.2f}x the batch "
            f"padded to its longest through Keras's LSTM loop ({s.unsorted_reviews_per_s:.0f} "
            "reviews/s)",
            f"compute: {c.flops_per_token_forward / 1e3:.1f} kFLOP/token forward; training "
            f"{c.train_gflops:.2f} GFLOP/s, inference {c.inference_gflops:.2f} GFLOP/s; matmul "
            f"{c.matmul_gflops_lstm_shape:.1f} GFLOP/s at the LSTM's shape, "
            f"{c.matmul_gflops_2048:.1f} GFLOP/s at 2048^3; utilization "
            f"{c.train_utilization_of_large_matmul:.1%} (training), "
            f"{c.inference_utilization_of_large_matmul:.1%} (inference)",
            "one batch of 256, ms: "
            + "; ".join(
                f"{k} {v:.1f}" if v is not None else f"{k} failed"
                for k, v in self.profile_batch_256_ms.items()
            ),
        ]
        if self.parity is not None:
            ours, notebook = self.parity.ours, self.parity.notebook
            lines.append(
                f"accuracy parity after {len(ours.val_accuracy_per_epoch)} epochs: validation "
                f"{ours.val_accuracy_per_epoch[-1]:.4f} (ours) vs "
                f"{notebook.val_accuracy_per_epoch[-1]:.4f} (notebook way), "
                f"difference {self.parity.difference_points:+.2f} points"
            )
        lines.append(f"peak memory: {self.peak_memory_mb:.0f} MB")
        return "\n".join(lines)


@dataclass
class ExportPrecision(Section):
    batch: int
    rounds: int
    reviews_per_s_by_round: dict[str, list[float]]  # "float16", "float32"
    float16_reviews_per_s: float
    float32_reviews_per_s: float


@dataclass
class Precision(Figures):
    """--export-precision's figures."""

    inline: ClassVar[tuple[str, ...]] = ("about",)

    about: About
    export_precision: ExportPrecision

    def summary(self) -> str:
        e = self.export_precision
        return (
            f"export, batch of {e.batch} test reviews, medians of {e.rounds} rounds: "
            f"float16 {e.float16_reviews_per_s:.0f} reviews/s, "
            f"float32 {e.float32_reviews_per_s:.0f} reviews/s"
        )


# What the sections measure on


@dataclass(frozen=True)
class Bench:
    """What the sections measure on, all computed by load before any of them runs. The measured
    model is not here: measure builds it (fresh_model) and hands it to the sections that time
    it."""

    cfg: Config
    vec: text.Vectorizer
    reviews: list[str]  # training
    feats: dict[str, tf.RaggedTensor]  # the training reviews' token ids
    labels: np.ndarray
    matrix: np.ndarray  # the frozen vectors the LSTM reads, one row per token id
    val_reviews: list[str]  # inference and parity: only timed or compared, nothing is chosen
    val_labels: np.ndarray
    test_reviews: list[str]  # --export-precision: only timed
    steps: int  # measured training steps per repeat
    repeats: int  # repeats per figure, of which the medians are kept

    @classmethod
    def load(
        cls,
        source: str | None,
        *,
        max_rows: int | None,
        members: int | None,
        steps: int,
        repeats: int,
    ) -> Bench:
        """The default model's config (with `members` LSTM members when given) and the data of
        `source` (as data.load finds it), at most max_rows rows of each split."""
        cfg = Config(max_rows=max_rows)
        if members:
            cfg = dataclasses.replace(cfg, lstm_members=members)
        keras.utils.set_random_seed(cfg.seed)
        splits = data.load(source, cfg)
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
            steps=steps,
            repeats=repeats,
        )

    def fresh_model(self) -> tuple[keras.Model, keras.Model]:
        """A new default model, and its LSTM part compiled for training."""
        rows = LstmRows(self.feats, self.labels, pairs=None)
        return build_compiled_model(self.cfg, self.matrix, rows, tf.distribute.get_strategy())[:2]

    def notebook_dataset(self) -> tf.data.Dataset:
        """The notebooks' way: tokenize raw text again every epoch, pad every review to max_len,
        no cache."""
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

    def about(self) -> About:
        machine = Machine(
            cores=os.cpu_count(),
            cpu_features=cpu_features(),
            platform=platform.platform(),
            tensorflow=tf.__version__,
            gpus=[g.name for g in tf.config.list_physical_devices("GPU")],
        )
        return About(machine, self.cfg.to_dict())


# The runs


@contextmanager
def section(name: str) -> Iterator[None]:
    """One named part of the benchmark; its own duration goes to the log."""
    t = time.perf_counter()
    yield
    log.info(f"benchmark: {name} measured in {time.perf_counter() - t:.0f}s")


def measure(b: Bench, parity_epochs: int = 0) -> Speed:
    """Every section in turn; with parity_epochs, the accuracy parity check too."""
    with section("training"):
        # One model throughout, so that what is served below is what training measured.
        model, lstm = b.fresh_model()
        trained = training(b, lstm)
    same_accuracy = None
    if parity_epochs:
        with section("accuracy parity"):
            same_accuracy = parity(b, parity_epochs)
    with section("epoch"):
        epoch = epoch_seconds(b, lstm)
    with section("language model"):
        language = language_model(b)
    with tempfile.TemporaryDirectory() as tmp:
        serve = signature(export(model, b.vec, {"config": b.cfg.to_dict()}, Path(tmp)))
        with section("inference"):
            served = inference(b, serve)
        with section("sub-batching"):
            sorted_batches = sub_batching(
                model, b.vec, serve, b.val_reviews, b.cfg.seed, b.repeats, Path(tmp) / "unsorted"
            )
        with section("profile"):
            stages = profile(b, model, serve)
    with section("notebook inference"):
        notebook = notebook_inference(b, model)
    with section("compute"):
        flops = compute(
            b,
            train_tokens_per_s=trained.train_real_tokens_per_s,
            inference_per_s=served.inference_reviews_per_s[256],
            notebook_inference_per_s=notebook,
        )
    return Speed(
        b.about(),
        trained,
        same_accuracy,
        epoch,
        language,
        served,
        sorted_batches,
        stages,
        notebook,
        flops,
        peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        repeats=b.repeats,
        steps=b.steps,
    )


def measure_export_precision(b: Bench) -> Precision:
    """--export-precision's one section."""
    with section("export precision"):
        return Precision(b.about(), export_precision(b))


# The sections and what they time with


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
    return tf.saved_model.load(str(path)).signatures["serving_default"]


def matmul_gflops(m: int, k: int, n: int, repeats: int) -> float:
    """The machine's own float32 matmul speed at shape (m, k) x (k, n): median GFLOP/s."""
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


def train_rate(b: Bench, ds: tf.data.Dataset, model: keras.Model) -> tuple[float, float]:
    """reviews/s and real tokens/s over b.steps steps, after 5 warm-up steps (tracing)."""
    it = iter(ds.repeat())
    for _ in range(5):
        model.train_on_batch(*next(it))
    batches = [next(it) for _ in range(b.steps)]
    n = sum(int(y.shape[0]) for _, y in batches)
    toks = sum(int(np.count_nonzero(x["token_ids"])) for x, _ in batches)
    steps = {"train": lambda: [model.train_on_batch(x, y) for x, y in batches]}
    sec = statistics.median(alternating_seconds(steps, b.repeats)["train"])
    return n / sec, toks / sec


def _training_batches(b: Bench, first_epoch: int = 0) -> tf.data.Dataset:
    """The training reviews' batches as a training run makes them, from first_epoch on."""
    cfg = b.cfg
    return make_dataset(
        b.feats,
        b.labels,
        batch_size=cfg.batch_size,
        max_len=cfg.max_len,
        training=True,
        epochs=cfg.epochs,
        first_epoch=first_epoch,
    )


def training(b: Bench, lstm: keras.Model) -> Training:
    """Training throughput of lstm on our batches (ids computed once, cached, length-bucketed)
    against a fresh copy fed the notebooks' way: reviews/s, real tokens/s and the speed-up."""
    rps, tps = train_rate(b, _training_batches(b), lstm)
    log.info(f"train (ours): {rps:.0f} reviews/s, {tps:.0f} real tokens/s")
    nb_rps, nb_tps = train_rate(b, b.notebook_dataset(), b.fresh_model()[1])
    log.info(f"train (notebook way): {nb_rps:.0f} reviews/s, {nb_tps:.0f} real tokens/s")
    return Training(rps, tps, nb_rps, nb_tps, train_speedup_vs_notebook=tps / nb_tps)


def parity(b: Bench, epochs: int) -> Parity:
    """The speed-ups must not cost accuracy: the same model trained `epochs` full epochs both
    ways; validation accuracy per epoch, seconds, and the final difference in points."""
    cfg = b.cfg
    batches = {"batch_size": cfg.batch_size, "max_len": cfg.max_len}
    val_ids = b.vec.features(text.tokenize_corpus(b.val_reviews))["token_ids"]
    val_ds = make_dataset({"token_ids": val_ids}, b.val_labels, training=False, **batches)
    # The model's config as a run of `epochs` epochs: its learning rate decays over them.
    schedule = dataclasses.replace(cfg, epochs=epochs)

    def fit(way: str, ds: tf.data.Dataset, steps: int | None) -> ParityRun:
        keras.utils.set_random_seed(cfg.seed)
        steps_for_schedule = steps or -(-len(b.reviews) // cfg.batch_size)
        m = compile_model(lstm_model(build_model(cfg, b.matrix)), schedule, steps_for_schedule)
        t = time.perf_counter()
        h = m.fit(ds, validation_data=val_ds, epochs=epochs, steps_per_epoch=steps, verbose=0)
        run = ParityRun(h.history["val_accuracy"], time.perf_counter() - t)
        log.info(
            f"parity ({way}): validation accuracy per epoch "
            f"{[round(a, 4) for a in run.val_accuracy_per_epoch]}, {run.seconds:.0f}s"
        )
        return run

    ours = make_dataset(b.feats, b.labels, training=True, epochs=epochs, **batches)
    notebook = b.notebook_dataset()
    return Parity(
        ours=fit("ours", ours, steps_per_epoch(b.feats, **batches)),
        notebook=fit("notebook way", notebook, None),
    )


def epoch_seconds(b: Bench, lstm: keras.Model) -> float:
    """Seconds lstm takes to train one full epoch of the training reviews, dataset included."""
    t = time.perf_counter()
    ds = _training_batches(b, first_epoch=b.cfg.epochs - 1)  # the last epoch of a training run
    lstm.fit(ds, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - t
    log.info(f"train: one epoch of {len(b.reviews)} reviews in {seconds:.1f}s")
    return seconds


def language_model(b: Bench) -> dict[str, float]:
    """Pretraining's speed: real tokens/s through both language models (forward and backward
    LSTM, each with its output layer), by objective, on the training reviews."""
    rates = {}
    for objective in ("glove_cosine", "sampled_softmax"):
        cfg = dataclasses.replace(b.cfg, pretrain_objective=objective)
        model = LanguageModels(cfg, b.matrix)
        model.compile(optimizer=adam(cfg, cfg.pretrain_learning_rate, 1000))
        ds = make_dataset(
            b.feats,
            np.zeros(len(b.labels)),
            batch_size=cfg.pretrain_batch_size,
            max_len=cfg.max_len,
            training=True,
            epochs=cfg.epochs,
        )
        _, rates[objective] = train_rate(b, ds, model)
        log.info(f"language model ({objective}): {rates[objective]:.0f} real tokens/s")
    return rates


def inference(b: Bench, serve: Callable[..., dict]) -> Inference:
    """The exported SavedModel on raw strings: reviews/s by batch size, one review's latency."""
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
    return Inference(rates, p50, p99)


def sub_batching(
    model: keras.Model,
    vec: text.Vectorizer,
    serve: Callable[..., dict],
    reviews: list[str],
    seed: int,
    repeats: int,
    unsorted_dir: Path,
) -> SubBatching:
    """reviews/s of the export `serve` of model on random batches of 256 of `reviews`: its
    signature (length-sorted sub-batches, BlockLSTMV2) against the same model exported as before
    into unsorted_dir, each batch padded to its longest review through Keras's LSTM loop. The two
    take turns, `repeats` rounds."""
    serving_archive(as_float32(model, cudnn=False), vec, sub_batch=0, kernel=False).write_out(
        str(unsorted_dir), verbose=False
    )
    rng = np.random.default_rng(seed)
    picks = [rng.choice(len(reviews), 256, replace=len(reviews) < 256) for _ in range(8)]
    batches = [tf.constant([reviews[i] for i in pick]) for pick in picks]
    ways = {"sorted": serve, "unsorted": signature(unsorted_dir)}
    rates = serving_rates(ways, batches, repeats)
    sorted_rate, unsorted_rate = (statistics.median(rates[w]) for w in ("sorted", "unsorted"))
    log.info(
        f"sub-batching (batches of 256, sub-batches of {SUB_BATCH}): {sorted_rate:.0f} reviews/s, "
        f"unsorted {unsorted_rate:.0f} reviews/s, {sorted_rate / unsorted_rate:.2f}x"
    )
    return SubBatching(
        SUB_BATCH, rates, sorted_rate, unsorted_rate, speedup=sorted_rate / unsorted_rate
    )


def profile(b: Bench, model: keras.Model, serve: Callable[..., dict]) -> dict[str, float | None]:
    """Where one batch of 256 goes, stage by stage, and whether XLA speeds up the model part:
    median ms per stage, None where a stage failed."""
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

    def predict_one(review):
        return model.predict(b.vec(tf.constant([strip_html(review)])), verbose=0)

    predict_one(b.val_reviews[0])
    one_by_one = {"predict": lambda: [predict_one(x) for x in b.val_reviews[:50]]}
    rate = 50 / statistics.median(alternating_seconds(one_by_one, b.repeats)["predict"])
    log.info(f"inference (notebook way, one at a time): {rate:.1f} reviews/s")
    return rate


def export_precision(b: Bench) -> ExportPrecision:
    """reviews/s of one batch of 256 test reviews through the float16 and the float32 export of
    the same weights, 5 calls a round; the two take turns, b.repeats rounds."""
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
    return ExportPrecision(
        int(batch.shape[0]),
        b.repeats,
        rates,
        float16_reviews_per_s=statistics.median(rates["float16"]),
        float32_reviews_per_s=statistics.median(rates["float32"]),
    )


def compute(
    b: Bench, train_tokens_per_s: float, inference_per_s: float, notebook_inference_per_s: float
) -> Compute:
    """FLOPs per token, the GFLOP/s training (at train_tokens_per_s) and inference (at
    inference_per_s, batches of 256) reach, and the machine's own matmul GFLOP/s at the LSTM's
    shape and at 2048^3, to read them against; inference's speed-up over the notebooks' way."""
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
    return Compute(
        inference_speedup_vs_notebook=inference_per_s / notebook_inference_per_s,
        flops_per_token_forward=fwd,
        tokens_per_review=tokens_per_review,
        train_gflops=train_gflops,
        inference_gflops=infer_gflops,
        matmul_gflops_lstm_shape=mm_lstm,
        matmul_gflops_2048=mm_large,
        train_utilization_of_large_matmul=train_gflops / mm_large,
        inference_utilization_of_large_matmul=infer_gflops / mm_large,
    )
