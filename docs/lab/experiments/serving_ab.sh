#!/usr/bin/env bash
# The REST server of two source trees taking turns on one machine: per round, each one's server
# is started, warmed up (4 clients, then 32), loaded by 32 single-review clients (3,200 requests), then by one client
# with batches of 256 (24 requests), and stopped. The load-test client is this tree's for both.
# Usage: MODEL_DIR=<export> OUT=<dir> A_SRC=<tree>/src B_SRC=src bash docs/lab/experiments/serving_ab.sh [ROUNDS]
# SERVE_FLAGS: serve.py flags for both (default: one batch thread of 32, a 30 ms window);
# STUB_MS: replace each model call by a sleep of that many ms (stub_model_server.py).
# Writes OUT/{a,b}_{c32,b256}_r<n>.json; run it on an otherwise idle machine.
source "$(dirname "$0")/serving_common.sh"
: "${OUT:?give OUT, a folder for the figures}" "${A_SRC:?give A_SRC}" "${B_SRC:?give B_SRC}"
FLAGS=${SERVE_FLAGS:-"--enable_batching --num-batch-threads 1 --max-batch-size 32 --batch-timeout-micros 30000"}
A_SRC=$(realpath "$A_SRC"); B_SRC=$(realpath "$B_SRC")
mkdir -p "$OUT"
for r in $(seq "${1:-3}"); do
  for side in a b; do
    src=$A_SRC; [ $side = b ] && src=$B_SRC
    script=scripts/serve.py; [ -n "${STUB_MS:-}" ] && script="docs/lab/experiments/stub_model_server.py $STUB_MS"
    PYTHONPATH=$src SERVE_SCRIPT=$script serve 8611 "$OUT"/server_$side.log $FLAGS
    # warm-up, 32 clients included: a server's first series at 32 clients runs slower than the
    # next ones (docs/lab/serving-rounds.md)
    $PY scripts/load_test.py -q --url http://127.0.0.1:8611 --clients 4 --requests 200 --data $DATA > /dev/null
    $PY scripts/load_test.py -q --url http://127.0.0.1:8611 --clients 32 --requests 1600 --data $DATA > /dev/null
    $PY scripts/load_test.py -q --url http://127.0.0.1:8611 --clients 32 --requests 3200 --data $DATA --json "$OUT"/${side}_c32_r$r.json > /dev/null
    $PY scripts/load_test.py -q --url http://127.0.0.1:8611 --clients 1 --batch 256 --requests 24 --data $DATA --json "$OUT"/${side}_b256_r$r.json > /dev/null
    kill -TERM $pid
    # bounded: a server that does not stop is killed, never waited on without end
    for i in $(seq 30); do kill -0 $pid 2> /dev/null || break; sleep 1; done
    kill -9 $pid 2> /dev/null
  done
done
$PY - "$OUT" <<'PY'
import glob, json, statistics, sys
for side in "ab":
    rows = []
    for f in sorted(glob.glob(f"{sys.argv[1]}/{side}_c32_r*.json")):
        c, b = json.load(open(f)), json.load(open(f.replace("_c32_", "_b256_")))
        rows.append((c["reviews_per_s"], c["latency_ms_p99"], b["reviews_per_s"]))
    shares = [c / b for c, _, b in rows]
    print(side, "32 x 1:", [f"{c:.0f}/s p99 {p:.0f} ms" for c, p, _ in rows],
          "| 1 x 256:", [f"{b:.0f}/s" for *_, b in rows],
          "| shares:", [f"{s:.0%}" for s in shares], f"median {statistics.median(shares):.1%}")
PY
