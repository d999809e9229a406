"""scripts/serve.py with every model call replaced by a fixed sleep, to time the HTTP side alone:
with the cores free during the "call", what is left of a load test's time is the server's and the
client's own work. The export given is loaded as usual (its routes and metadata), never called.

  PYTHONPATH=src python docs/lab/experiments/stub_model_server.py MILLISECONDS [serve.py flags ...]

docs/lab/experiments/serving_ab.sh runs it (STUB_MS) for the server in two source trees, taking
turns.
"""

import sys
import time

from imdb_sentiment import batching, cli, model_versions
from imdb_sentiment.commands.serve import main


def sleeper(seconds: float):
    def predict(loaded, reviews):
        time.sleep(seconds)  # as a model call, it holds no Python lock
        return [0.5] * len(reviews), ["positive"] * len(reviews)

    return predict


if __name__ == "__main__":
    # the module globals that the warm-up and the model call threads call
    model_versions.predict = batching.predict = sleeper(float(sys.argv[1]) / 1000)
    sys.argv[1:2] = []
    cli.run(main)
