"""docs/lab/serving-rounds.md's model-call cost: the exported serving signature called in this
process on batches of 1 to 256 real reviews, median milliseconds per call. It bounds what any
batching of single-review requests can reach: N clients merged perfectly still pay one call of N
reviews. Given several exports, it calls them on the same batches in turns, call by call, so that
the machine's drift falls on all of them alike.

  python docs/lab/experiments/model_call_cost.py EXPORT [EXPORT ...] [--data CSV] [--sizes 1,8,32]
"""

import argparse
import statistics
import time

import pandas as pd
import tensorflow as tf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("exports", nargs="+", help="version folders, e.g. saved_models/x/1")
    parser.add_argument("--data", default="../shared/data/imdb/imdb_50k_split.csv.gz")
    parser.add_argument("--sizes", default="1,2,4,8,16,32,64,128,256")
    args = parser.parse_args()
    serves = [tf.saved_model.load(e).signatures["serving_default"] for e in args.exports]
    reviews = pd.read_csv(args.data, nrows=5000).review.sample(4096, random_state=0).tolist()
    for n in map(int, args.sizes.split(",")):
        times = [[] for _ in serves]
        for i in range(max(6, 1024 // n)):
            batch = tf.constant([reviews[(i * n + j) % len(reviews)] for j in range(n)])
            turn = i % len(serves)  # who goes first changes every call
            for k in [*range(turn, len(serves)), *range(turn)]:
                start = time.perf_counter()
                serves[k](review=batch)
                times[k].append(time.perf_counter() - start)
        medians = [statistics.median(t[2:]) for t in times]  # the first calls trace and warm up
        cells = [f"{m * 1000:8.2f} ms per call, {n / m:7.1f} reviews/s" for m in medians]
        ratios = [f"{medians[0] / m:.2f}x" for m in medians[1:]]
        print(
            f"batch {n:4d}: "
            + " | ".join(cells)
            + ("  first/others " + " ".join(ratios) if ratios else "")
        )


if __name__ == "__main__":
    main()
