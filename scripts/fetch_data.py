#!/usr/bin/env python3
"""Fetch the IMDB reviews (and, for more than 50 dimensions, the GloVe archive) into the caches.

The same as `imdb-sentiment fetch`; --help tells more.
"""

from imdb_sentiment import cli
from imdb_sentiment.commands.fetch import main

if __name__ == "__main__":
    cli.run(main)
