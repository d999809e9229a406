#!/usr/bin/env python3
"""Predict the sentiment of reviews with an exported model; prints one JSON line per review.

The same as `imdb-sentiment predict`; --help tells more.
"""

from imdb_sentiment import cli
from imdb_sentiment.commands.predict import main

if __name__ == "__main__":
    cli.run(main)
