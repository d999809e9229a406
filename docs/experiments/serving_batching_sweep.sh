#!/usr/bin/env bash
# docs/serving.md's batching sweep: --batch-timeout-micros and --num-batch-threads against 32 and
# 128 single-review clients, one run each, printed as load_test.py's JSON lines.
# Usage: MODEL_DIR=saved_models/imdb_sentiment bash docs/experiments/serving_batching_sweep.sh
set -uo pipefail  # a series with failed requests (exit 1) is kept, not the end of the run
cd "$(dirname "$0")/../.."
: "${MODEL_DIR:?give MODEL_DIR, the exported model folder}"
PY=.venv/bin/python
DATA=../shared/data/imdb/imdb_50k_split.csv.gz
for cfg in "2000 2" "5000 2" "10000 2" "2000 1" "5000 1" "10000 1"; do
  set -- $cfg
  $PY scripts/serve.py --model-dir "$MODEL_DIR" --port 8612 --enable_batching --batch-timeout-micros $1 --num-batch-threads $2 -q > /dev/null 2>&1 &
  pid=$!
  for i in $(seq 60); do curl -s -o /dev/null http://127.0.0.1:8612/v1/models/imdb_sentiment && break; sleep 1; done
  $PY scripts/load_test.py -q --url http://127.0.0.1:8612 --clients 4 --requests 100 --data $DATA > /dev/null
  for c in 32 128; do
    r=$($PY scripts/load_test.py -q --url http://127.0.0.1:8612 --clients $c --requests 1280 --data $DATA)
    echo "timeout $1 threads $2 clients $c $r"
  done
  kill -TERM $pid; wait $pid
done
