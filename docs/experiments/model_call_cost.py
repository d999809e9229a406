"""docs/serving.md's model-call cost: the exported serving signature called in this process on
batches of 1 to 256 real reviews, median milliseconds per call. It bounds what any batching of
single-review requests can reach: N clients merged perfectly still pay one call of N reviews.

  python docs/experiments/model_call_cost.py saved_models/imdb_sentiment/1 [DATA]
"""

import statistics
import sys
import time

import pandas as pd
import tensorflow as tf


def main(model_dir: str, data: str = "../shared/data/imdb/imdb_50k_split.csv.gz") -> None:
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    reviews = pd.read_csv(data, nrows=5000).review.sample(4096, random_state=0).tolist()
    for n in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        times = []
        for i in range(max(6, 1024 // n)):
            batch = tf.constant([reviews[(i * n + j) % len(reviews)] for j in range(n)])
            start = time.perf_counter()
            serve(review=batch)
            times.append(time.perf_counter() - start)
        median = statistics.median(times[2:])  # the first calls trace and warm up
        print(f"batch {n:4d}: {median * 1000:8.2f} ms per call, {n / median:7.1f} reviews/s")


if __name__ == "__main__":
    main(*sys.argv[1:3])
