#!/usr/bin/env python3
"""Soak a running REST server with good, malformed, slow and idle clients; check its answers,
threads and memory.

The same as `imdb-sentiment soak`; --help tells more.
"""

from imdb_sentiment import cli
from imdb_sentiment.commands.soak import main

if __name__ == "__main__":
    cli.run(main)
