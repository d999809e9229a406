#!/usr/bin/env python3
"""Load a TF Serving-style REST endpoint from concurrent clients and print throughput and latency.

The same as `imdb-sentiment load-test`; --help tells more.
"""

from imdb_sentiment import cli
from imdb_sentiment.commands.load_test import main

if __name__ == "__main__":
    cli.run(main)
