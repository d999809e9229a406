# Sourced by the serving_*.sh scripts here: their settings and a server started and waited for.
set -uo pipefail  # a series with failed requests (exit 1) is kept, not the end of the run
cd "$(dirname "$0")/../../.."
: "${MODEL_DIR:?give MODEL_DIR, the exported model folder}"
PY=.venv/bin/python
DATA=../shared/data/imdb/imdb_50k_split.csv.gz

# serve PORT LOG [serve.py flags...]: starts scripts/serve.py (or $SERVE_SCRIPT, a command line
# taking serve.py's flags) in the background (its pid in $pid) and returns once its REST port
# answers.
serve() {
  local port=$1 log=$2
  shift 2
  $PY ${SERVE_SCRIPT:-scripts/serve.py} --model-dir "$MODEL_DIR" --port "$port" "$@" -q > "$log" 2>&1 &
  pid=$!
  for i in $(seq 60); do curl -s -o /dev/null "http://127.0.0.1:$port/v1/models/imdb_sentiment" && break; sleep 1; done
  # another server on that port would answer too, and every figure would be its
  kill -0 $pid 2> /dev/null || { echo "the server did not start: $(tail -1 "$log")" >&2; exit 1; }
}
