#!/usr/bin/env bash
# docs/lab/serving-rounds.md's batching sweep: --batch-timeout-micros and --num-batch-threads against 32 and
# 128 single-review clients, one run each, printed as load_test.py's JSON lines.
# Usage: MODEL_DIR=saved_models/imdb_sentiment bash docs/lab/experiments/serving_batching_sweep.sh
source "$(dirname "$0")/serving_common.sh"
for cfg in "2000 2" "5000 2" "10000 2" "2000 1" "5000 1" "10000 1"; do
  set -- $cfg
  serve 8612 /dev/null --enable_batching --batch-timeout-micros $1 --num-batch-threads $2
  $PY scripts/load_test.py -q --url http://127.0.0.1:8612 --clients 4 --requests 100 --data $DATA > /dev/null
  for c in 32 128; do
    r=$($PY scripts/load_test.py -q --url http://127.0.0.1:8612 --clients $c --requests 1280 --data $DATA)
    echo "timeout $1 threads $2 clients $c $r"
  done
  kill -TERM $pid; wait $pid
done
