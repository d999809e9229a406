"""Training under MirroredStrategy on two logical CPU devices matches single-device training."""
import subprocess
import sys
import textwrap

from conftest import ROOT

SCRIPT = textwrap.dedent("""
    import dataclasses
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from imdb_sentiment.config import Config
    from imdb_sentiment.train import build_compiled_model, make_dataset, make_strategy

    # No dropout: each replica would draw its own masks. Lengths < 25 keep every review in one
    # bucket, so each of the 4 global batches has 16 reviews, 8 per replica. Only the LSTM part is
    # trained by the optimizer (the n-gram bag is fitted outside it), so that is what runs here.
    cfg = Config(lstm_units=4, dropout=0.0, batch_size=8, max_len=24, head_tokens=4,
                 lr_schedule="constant", learning_rate=0.01)
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(30, 50)).astype("float32")
    lengths = rng.integers(3, 24, size=64)
    feats = {"token_ids": tf.ragged.constant([list(rng.integers(1, 30, n)) for n in lengths], tf.int32)}
    labels = rng.integers(0, 2, 64).astype("float32")

    def run(strategy, cfg):
        keras.utils.set_random_seed(0)
        _, lstm, global_cfg = build_compiled_model(cfg, matrix, feats, strategy)
        lstm.fit(make_dataset(feats, labels, global_cfg, training=False), epochs=3, verbose=0)
        return global_cfg.batch_size, [w.numpy() for w in lstm.weights]

    # Same global batch of 16: one device with batch 16, two replicas with 8 each.
    b1, single = run(make_strategy("none"), dataclasses.replace(cfg, batch_size=16))
    b2, mirrored = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), cfg)
    assert (b1, b2) == (16, 16), (b1, b2)
    print("max weight difference", max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored)))
""")


def test_mirrored_strategy_over_two_cpus_matches_one_device_with_the_same_global_batch():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    diff = float(proc.stdout.strip().splitlines()[-1].split()[-1])
    assert diff < 1e-4
