"""Speed of the default model on this machine, against the notebooks' way of doing the same work.

Prints, as medians of --repeats runs: training throughput (reviews/s and real tokens/s, padding not
counted) and the time of one full epoch; inference throughput of the exported SavedModel on raw
strings at batch sizes 1, 32 and 256, single-review latency (p50, p99); FLOPs per token, achieved
GFLOP/s and the machine's own float32 matmul GFLOP/s; the notebooks' way (every review padded to
max_len and tokenized again each epoch; one review at a time through BeautifulSoup, the tokenizer and
model.predict) as ratios; peak memory. --json writes every figure as one JSON object.

--export-precision measures only the serving speed of a GPU-trained model's two possible exports:
the float16 graph it was exported as before model.as_float32 (mixed_float16 policy), and float32.
"""

import logging
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

from imdb_sentiment import cli

log = logging.getLogger(__name__)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_gflops(m: int, k: int, n: int, repeats: int) -> float:
    import tensorflow as tf

    a, b = tf.random.normal([m, k]), tf.random.normal([k, n])
    reps = max(1, int(2e9 / (2 * m * k * n)))  # about 2 GFLOP per timing
    f = tf.function(
        lambda: tf.reduce_sum(tf.stack([tf.matmul(a + i, b) for i in range(min(reps, 64))]))
    )
    f()
    loops = max(1, reps // 64)
    sec = median_time(lambda: [f().numpy() for _ in range(loops)], repeats)
    return 2 * m * k * n * min(reps, 64) * loops / sec / 1e9


def export_precision(cfg, matrix, vec, reviews: list[str], repeats: int) -> dict:
    """reviews/s of one batch through the float16 and the float32 export of the same weights.

    The two take turns, `repeats` rounds of 5 calls each, so a busy machine slows both alike.
    """
    import keras
    import tensorflow as tf

    from imdb_sentiment.export import export, serving_archive
    from imdb_sentiment.model import build_model

    keras.mixed_precision.set_global_policy("mixed_float16")  # as train.setup_devices on a GPU
    try:
        model = build_model(cfg, matrix)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    batch = tf.constant(reviews)
    with tempfile.TemporaryDirectory() as tmp:
        serving_archive(model, vec).write_out(f"{tmp}/float16", verbose=False)  # export() before
        float32 = export(model, vec, {"config": cfg.to_dict()}, Path(tmp) / "float32")
        serve = {
            name: tf.saved_model.load(str(path)).signatures["serving_default"]
            for name, path in (("float16", Path(tmp) / "float16"), ("float32", float32))
        }
        rates = {name: [] for name in serve}
        for f in serve.values():
            f(review=batch)
        for i in range(repeats):
            for name in sorted(serve, reverse=i % 2 == 1):
                t = time.perf_counter()
                for _ in range(5):
                    serve[name](review=batch)["probability"].numpy()
                rates[name].append(5 * len(reviews) / (time.perf_counter() - t))
    return {
        "batch": len(reviews),
        "rounds": repeats,
        "reviews_per_s_by_round": rates,
        **{f"{name}_reviews_per_s": statistics.median(r) for name, r in rates.items()},
    }


def lstm_flops_per_token(cfg) -> float:
    """Forward FLOPs per token: the gate matmuls of every LSTM (2 * 4u * (in + u)) plus ~10u elementwise."""
    flops, width = 0, cfg.glove_dim
    directions = 2 if cfg.bidirectional else 1
    for _ in range(cfg.lstm_layers):
        u = cfg.lstm_units
        flops += directions * (2 * 4 * u * (width + u) + 10 * u)
        width = directions * u
    return float(flops)


def main(argv=None) -> int:
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
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument(
        "--parity-epochs",
        type=int,
        default=0,
        help="also train the model both ways for N full epochs and compare validation accuracy "
        "(about 2 min per epoch and way on 2 cores; default off)",
    )
    p.add_argument(
        "--export-precision",
        action="store_true",
        help="only compare the float16 and float32 exports of one model on 256 test "
        "reviews (medians of --repeats alternating rounds)",
    )
    args = p.parse_args(argv)
    cli.load_tensorflow()

    import keras
    import numpy as np
    import tensorflow as tf

    from imdb_sentiment import data, text
    from imdb_sentiment.config import Config
    from imdb_sentiment.embeddings import embedding_matrix
    from imdb_sentiment.export import export
    from imdb_sentiment.model import build_model, compile_model, lstm_model
    from imdb_sentiment.train import build_compiled_model, make_dataset, steps_per_epoch

    cfg = Config(max_rows=args.max_rows)
    r = {
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "tensorflow": tf.__version__,
            "gpus": [g.name for g in tf.config.list_physical_devices("GPU")],
        },
        "config": cfg.to_dict(),
    }
    keras.utils.set_random_seed(cfg.seed)
    splits = data.load(args.data, cfg)
    reviews = splits.train.review.tolist()
    tokens = text.tokenize_corpus(reviews)
    vec = text.Vectorizer.from_config(
        text.build_vocabulary(tokens, cfg.vocab_size, cfg.min_count), cfg
    )
    # Training fits the LSTM part alone (the n-gram bag is a logistic regression fitted outside the
    # network), so training is measured on token ids; inference runs the whole model. The bag's
    # weights stay 0 here: its cost, a gather and a sum, does not depend on their values.
    feats = {"token_ids": vec.features(tokens)["token_ids"]}
    labels = splits.train.label.to_numpy()
    matrix, _ = embedding_matrix(vec.vocabulary, cfg)
    if args.export_precision:  # test reviews: only timed, nothing is chosen on them
        batch = splits.test.review.tolist()[:256]
        r["export_precision"] = e = export_precision(cfg, matrix, vec, batch, args.repeats)
        print(
            f"export, batch of {e['batch']} test reviews, medians of {e['rounds']} rounds: "
            f"float16 {e['float16_reviews_per_s']:.0f} reviews/s, "
            f"float32 {e['float32_reviews_per_s']:.0f} reviews/s"
        )
        return write_figures(r, args.json)

    def fresh_model():
        return build_compiled_model(cfg, matrix, feats, tf.distribute.get_strategy())[:2]

    def train_rate(ds, model):
        """reviews/s and real tokens/s over args.steps steps, after 5 warm-up steps (tracing)."""
        it = iter(ds.repeat())
        for _ in range(5):
            model.train_on_batch(*next(it))
        batches = [next(it) for _ in range(args.steps)]
        n = sum(int(y.shape[0]) for _, y in batches)
        toks = sum(int(np.count_nonzero(x["token_ids"])) for x, _ in batches)
        sec = median_time(lambda: [model.train_on_batch(x, y) for x, y in batches], args.repeats)
        return n / sec, toks / sec

    # Ours: ids computed once, cached, length-bucketed batches.
    model, lstm = fresh_model()
    ours_rps, ours_tps = train_rate(make_dataset(feats, labels, cfg, training=True), lstm)
    log.info(f"train (ours): {ours_rps:.0f} reviews/s, {ours_tps:.0f} real tokens/s")

    # The notebooks' way: tokenize raw text again every epoch, pad every review to max_len, no cache.
    def notebook_batch(t, y):
        ids = vec(t)["token_ids"]
        return {
            "token_ids": tf.pad(ids, [[0, 0], [0, cfg.max_len - tf.shape(ids)[1]]])[
                :, : cfg.max_len
            ]
        }, y

    nb_ds = (
        tf.data.Dataset.from_tensor_slices((reviews, labels.astype("float32")))
        .shuffle(len(reviews))
        .batch(cfg.batch_size)
        .map(notebook_batch)
    )
    nb_rps, nb_tps = train_rate(nb_ds, fresh_model()[1])
    log.info(f"train (notebook way): {nb_rps:.0f} reviews/s, {nb_tps:.0f} real tokens/s")

    if (
        args.parity_epochs
    ):  # the speed-ups must not cost accuracy: same model, same epochs, both ways
        import dataclasses

        pcfg = dataclasses.replace(cfg, epochs=args.parity_epochs)
        val_ids = vec.features(text.tokenize_corpus(splits.val.review.tolist()))["token_ids"]
        val_ds = make_dataset({"token_ids": val_ids}, splits.val.label, pcfg, training=False)
        parity = {}
        for way, ds, steps in (
            (
                "ours",
                make_dataset(feats, labels, pcfg, training=True),
                steps_per_epoch(feats, pcfg),
            ),
            ("notebook way", nb_ds, None),
        ):
            keras.utils.set_random_seed(cfg.seed)
            m = compile_model(
                lstm_model(build_model(pcfg, matrix)),
                pcfg,
                steps or -(-len(reviews) // cfg.batch_size),
            )
            t = time.perf_counter()
            h = m.fit(
                ds, validation_data=val_ds, epochs=pcfg.epochs, steps_per_epoch=steps, verbose=0
            )
            parity[way] = {
                "val_accuracy_per_epoch": h.history["val_accuracy"],
                "seconds": time.perf_counter() - t,
            }
            log.info(
                f"parity ({way}): validation accuracy per epoch {[round(a, 4) for a in h.history['val_accuracy']]}, "
                f"{parity[way]['seconds']:.0f}s"
            )
        parity["difference_points"] = 100 * (
            parity["ours"]["val_accuracy_per_epoch"][-1]
            - parity["notebook way"]["val_accuracy_per_epoch"][-1]
        )
        r["parity"] = parity

    t = time.perf_counter()
    lstm.fit(
        make_dataset(feats, labels, cfg, training=True, first_epoch=cfg.epochs - 1),
        epochs=1,
        verbose=0,
        shuffle=False,
    )
    epoch_s = time.perf_counter() - t
    log.info(f"train: one epoch of {len(reviews)} reviews in {epoch_s:.1f}s")

    # Inference: the exported SavedModel on raw strings.
    with tempfile.TemporaryDirectory() as tmp:
        version = export(model, vec, {"config": cfg.to_dict()}, Path(tmp))
        serve = tf.saved_model.load(str(version)).signatures["serving_default"]
        sample = splits.val.review.tolist()
        infer = {}
        for bs in (1, 32, 256):
            batches = [
                tf.constant(sample[i : i + bs])
                for i in range(0, min(len(sample), max(64 * bs, 1024)), bs)
            ]
            batches = batches[: max(8, 2048 // bs)]
            serve(review=batches[0])
            n = sum(int(b.shape[0]) for b in batches)
            infer[bs] = n / median_time(
                lambda: [serve(review=b)["probability"].numpy() for b in batches], args.repeats
            )
            log.info(f"inference: batch {bs}: {infer[bs]:.0f} reviews/s")
        lat = []
        for review in sample[:300]:
            s = time.perf_counter()
            serve(review=tf.constant([review]))["probability"].numpy()
            lat.append((time.perf_counter() - s) * 1000)
        p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
        log.info(f"latency (one review): p50 {p50:.1f} ms, p99 {p99:.1f} ms")

    # Where one batch of 256 goes, stage by stage, and whether XLA speeds up the model part.
    batch = tf.constant(sample[:256])
    stages = {
        "standardize (regex ops)": tf.function(lambda b: text.standardize(b)),
        "vectorize (standardize, split, lookup, n-gram hashing)": tf.function(lambda b: vec(b)),
    }
    feats_256 = stages["vectorize (standardize, split, lookup, n-gram hashing)"](batch)
    forward = {
        "model forward": tf.function(lambda f: model(f, training=False)),
        "model forward, XLA (jit_compile)": tf.function(
            lambda f: model(f, training=False), jit_compile=True
        ),
    }
    profile = {}
    for name, fn in [
        *((k, (f, batch)) for k, f in stages.items()),
        *((k, (f, feats_256)) for k, f in forward.items()),
    ]:
        f, x = fn
        try:
            f(x)
            profile[name] = median_time(lambda: [f(x) for _ in range(5)], args.repeats) / 5 * 1000
        except Exception as e:  # XLA may not compile every op on every machine
            profile[name] = None
            log.info(f"profile: {name} failed: {type(e).__name__}: {str(e)[:200]}")
    serve(review=batch)
    profile["whole serving signature"] = (
        median_time(
            lambda: [serve(review=batch)["probability"].numpy() for _ in range(5)], args.repeats
        )
        / 5
        * 1000
    )
    for name, ms in profile.items():
        log.info(
            f"profile, one batch of 256: {name}: "
            + (f"{ms:.1f} ms" if ms is not None else "failed")
        )

    # The notebooks' way of predicting: one review at a time, BeautifulSoup + tokenizer + model.predict.
    def notebook_predict(review):
        ids = vec(tf.constant([data.strip_html(review)]))
        return model.predict(ids, verbose=0)

    notebook_predict(sample[0])
    nb_pred = 50 / median_time(lambda: [notebook_predict(x) for x in sample[:50]], args.repeats)
    log.info(f"inference (notebook way, one at a time): {nb_pred:.1f} reviews/s")

    tokens_per_review = float(
        np.mean(np.minimum(text.tokenize_corpus(sample[:2048]).row_lengths().numpy(), cfg.max_len))
    )
    fwd = lstm_flops_per_token(cfg)
    mm_lstm = matmul_gflops(
        cfg.batch_size, cfg.glove_dim + cfg.lstm_units, 4 * cfg.lstm_units, args.repeats
    )
    mm_large = matmul_gflops(2048, 2048, 2048, args.repeats)
    train_gflops = ours_tps * 3 * fwd / 1e9  # backward is about twice the forward
    infer_gflops = infer[256] * tokens_per_review * fwd / 1e9
    r.update(
        {
            "train_reviews_per_s": ours_rps,
            "train_real_tokens_per_s": ours_tps,
            "epoch_seconds": epoch_s,
            "notebook_train_reviews_per_s": nb_rps,
            "notebook_train_real_tokens_per_s": nb_tps,
            "train_speedup_vs_notebook": ours_tps / nb_tps,
            "inference_reviews_per_s": {str(k): v for k, v in infer.items()},
            "latency_ms_p50": p50,
            "latency_ms_p99": p99,
            "notebook_inference_reviews_per_s": nb_pred,
            "inference_speedup_vs_notebook": infer[256] / nb_pred,
            "flops_per_token_forward": fwd,
            "tokens_per_review": tokens_per_review,
            "train_gflops": train_gflops,
            "inference_gflops": infer_gflops,
            "matmul_gflops_lstm_shape": mm_lstm,
            "matmul_gflops_2048": mm_large,
            "train_utilization_of_large_matmul": train_gflops / mm_large,
            "inference_utilization_of_large_matmul": infer_gflops / mm_large,
            "profile_batch_256_ms": profile,
            "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "repeats": args.repeats,
            "steps": args.steps,
        }
    )
    print(
        f"\nmachine: {r['machine']['cores']} cores, TensorFlow {tf.__version__}, GPUs: {r['machine']['gpus'] or 'none'}"
    )
    print(
        f"training: {ours_rps:.0f} reviews/s, {ours_tps:.0f} real tokens/s; one epoch {epoch_s:.0f}s; "
        f"{r['train_speedup_vs_notebook']:.2f}x the notebook way ({nb_tps:.0f} real tokens/s)"
    )
    print(
        "inference: "
        + ", ".join(f"batch {k}: {v:.0f}/s" for k, v in infer.items())
        + f"; latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; {r['inference_speedup_vs_notebook']:.0f}x the "
        f"notebook way ({nb_pred:.1f}/s)"
    )
    print(
        f"compute: {fwd / 1e3:.1f} kFLOP/token forward; training {train_gflops:.2f} GFLOP/s, inference "
        f"{infer_gflops:.2f} GFLOP/s; matmul {mm_lstm:.1f} GFLOP/s at the LSTM's shape, {mm_large:.1f} "
        f"GFLOP/s at 2048^3; utilization {r['train_utilization_of_large_matmul']:.1%} (training), "
        f"{r['inference_utilization_of_large_matmul']:.1%} (inference)"
    )
    print(
        "one batch of 256, ms: "
        + "; ".join(f"{k} {v:.1f}" if v is not None else f"{k} failed" for k, v in profile.items())
    )
    if args.parity_epochs:
        print(
            f"accuracy parity after {args.parity_epochs} epochs: validation "
            f"{r['parity']['ours']['val_accuracy_per_epoch'][-1]:.4f} (ours) vs "
            f"{r['parity']['notebook way']['val_accuracy_per_epoch'][-1]:.4f} (notebook way), "
            f"difference {r['parity']['difference_points']:+.2f} points"
        )
    print(f"peak memory: {r['peak_memory_mb']:.0f} MB")
    return write_figures(r, args.json)


def write_figures(r: dict, path: Path | None) -> int:
    if path:
        from imdb_sentiment.files import write_json

        write_json(path, r)
    return 0
