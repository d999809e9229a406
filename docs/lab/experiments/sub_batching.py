"""docs/lab/serving-rounds.md's sub-batching figure for a trained run and its export: benchmark.py's
"sub-batching" section alone (random batches of 256 validation reviews through the export and
through the same model exported without sub-batches, taking turns), plus the text path alone
(the `token_ids` signature) and the whole signature, medians of ROUNDS rounds. Timed only.

  PYTHONPATH=src python docs/lab/experiments/sub_batching.py RUN_DIR EXPORTED_VERSION DATA [ROUNDS]
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imdb_sentiment import cli, data
from imdb_sentiment.benchmark import sub_batching
from imdb_sentiment.runs import load_artifacts


def main(run: str, version: str, source: str, rounds: str = "5") -> None:
    cli.setup_logging(20)
    tf = cli.load_tensorflow()
    art = load_artifacts(Path(run))
    sample = data.load(source, art.cfg).val.review.tolist()
    signatures = tf.saved_model.load(version).signatures
    with tempfile.TemporaryDirectory() as tmp:
        figures = sub_batching(
            art.model,
            art.vectorizer,
            signatures["serving_default"],
            sample,
            art.cfg.seed,
            int(rounds),
            Path(tmp) / "unsorted",
        )
        print(figures.to_dict())
    rng = np.random.default_rng(0)
    batches = [tf.constant([sample[i] for i in rng.choice(len(sample), 256)]) for _ in range(8)]
    for name in ("token_ids", "serving_default"):
        f = signatures[name]
        f(review=batches[0])
        rates = []
        for _ in range(int(rounds)):
            t = time.perf_counter()
            for x in batches:
                list(f(review=x).values())[0].numpy()
            rates.append(256 * len(batches) / (time.perf_counter() - t))
        print(f"{name}: {statistics.median(rates):.0f} reviews/s")


if __name__ == "__main__":
    main(*sys.argv[1:5])
