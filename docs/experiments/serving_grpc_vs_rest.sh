#!/usr/bin/env bash
# docs/serving.md's REST against gRPC figures: one server with --enable_batching and both ports;
# 32 single-review clients over REST and over gRPC, and one client with batches of 256, three
# series each, alternating. Usage:
#   MODEL_DIR=saved_models/imdb_sentiment OUT=/tmp/grpc bash docs/experiments/serving_grpc_vs_rest.sh
# Run it on an otherwise idle machine; each series writes OUT/<kind>_r<n>.json.
set -uo pipefail  # a series with failed requests (exit 1) is kept, not the end of the run
cd "$(dirname "$0")/../.."
: "${MODEL_DIR:?give MODEL_DIR, the exported model folder}"
: "${OUT:?give OUT, a folder for the figures}"
mkdir -p "$OUT"
PY=.venv/bin/python
DATA=../shared/data/imdb/imdb_50k_split.csv.gz
$PY scripts/serve.py --model-dir "$MODEL_DIR" --port 8611 --grpc-port 8610 --enable_batching \
  ${SERVE_FLAGS:-} -q > "$OUT"/server.log 2>&1 &
pid=$!
for i in $(seq 60); do curl -s -o /dev/null http://127.0.0.1:8611/v1/models/imdb_sentiment && break; sleep 1; done
LOAD="$PY scripts/load_test.py -q --data $DATA"
$LOAD --url http://127.0.0.1:8611 --clients 4 --requests 200 > /dev/null  # warm-up
for rep in 1 2 3; do
  $LOAD --url http://127.0.0.1:8611 --clients 32 --requests 1280 --json "$OUT"/rest_c32_r$rep.json > /dev/null
  $LOAD --url grpc://127.0.0.1:8610 --clients 32 --requests 1280 --json "$OUT"/grpc_c32_r$rep.json > /dev/null
  $LOAD --url http://127.0.0.1:8611 --clients 1 --batch 256 --requests 12 --json "$OUT"/rest_b256_r$rep.json > /dev/null
  $LOAD --url grpc://127.0.0.1:8610 --clients 1 --batch 256 --requests 12 --json "$OUT"/grpc_b256_r$rep.json > /dev/null
done
kill -TERM $pid; wait $pid
