#!/usr/bin/env bash
# docs/lab/serving-rounds.md's load table: the default model served with and without --enable_batching,
# 1, 8, 32 and 128 single-review clients and one client with batches of 256, three series each.
# Usage: MODEL_DIR=saved_models/imdb_sentiment OUT=/tmp/load bash docs/lab/experiments/serving_load.sh
# SERVE_FLAGS adds serve.py flags to the batching server, e.g. SERVE_FLAGS="--num-batch-threads 1".
# Run it on an otherwise idle machine; each series writes OUT/<mode>_<clients>_r<n>.json.
source "$(dirname "$0")/serving_common.sh"
: "${OUT:?give OUT, a folder for the figures}"
mkdir -p "$OUT"
for mode in batching plain; do
  flags=""; [ $mode = batching ] && flags="--enable_batching ${SERVE_FLAGS:-}"
  serve 8611 "$OUT"/server_$mode.log $flags
  $PY scripts/load_test.py -q --url http://127.0.0.1:8611 --clients 4 --requests 200 --data $DATA > /dev/null  # warm-up
  for rep in 1 2 3; do
    for c in 1 8 32 128; do
      n=$(( c < 8 ? 400 : (c * 40 < 2000 ? c * 40 : 2000) )); [ $c = 128 ] && n=1280
      $PY scripts/load_test.py -q --url http://127.0.0.1:8611 --clients $c --requests $n --data $DATA --json "$OUT"/${mode}_c${c}_r${rep}.json > "$OUT"/${mode}_c${c}_r${rep}.txt
    done
    $PY scripts/load_test.py -q --url http://127.0.0.1:8611 --clients 1 --batch 256 --requests 24 --data $DATA --json "$OUT"/${mode}_b256_r${rep}.json > "$OUT"/${mode}_b256_r${rep}.txt
  done
  kill -TERM $pid; wait $pid
done
