#!/usr/bin/env bash
# docs/lab/serving-rounds.md's REST against gRPC figures: one server with --enable_batching and both ports;
# 32 single-review clients over REST and over gRPC, and one client with batches of 256, three
# series each, alternating. Usage:
#   MODEL_DIR=saved_models/imdb_sentiment OUT=/tmp/grpc bash docs/lab/experiments/serving_grpc_vs_rest.sh
# SERVE_FLAGS adds serve.py flags, e.g. SERVE_FLAGS="--num-batch-threads 1".
# Run it on an otherwise idle machine; each series writes OUT/<kind>_r<n>.json.
source "$(dirname "$0")/serving_common.sh"
: "${OUT:?give OUT, a folder for the figures}"
mkdir -p "$OUT"
serve 8611 "$OUT"/server.log --grpc-port 8610 --enable_batching ${SERVE_FLAGS:-}
LOAD="$PY scripts/load_test.py -q --data $DATA"
$LOAD --url http://127.0.0.1:8611 --clients 4 --requests 200 > /dev/null  # warm-up
for rep in 1 2 3; do
  $LOAD --url http://127.0.0.1:8611 --clients 32 --requests 1280 --json "$OUT"/rest_c32_r$rep.json > /dev/null
  $LOAD --url grpc://127.0.0.1:8610 --clients 32 --requests 1280 --json "$OUT"/grpc_c32_r$rep.json > /dev/null
  $LOAD --url http://127.0.0.1:8611 --clients 1 --batch 256 --requests 12 --json "$OUT"/rest_b256_r$rep.json > /dev/null
  $LOAD --url grpc://127.0.0.1:8610 --clients 1 --batch 256 --requests 12 --json "$OUT"/grpc_b256_r$rep.json > /dev/null
done
kill -TERM $pid; wait $pid
