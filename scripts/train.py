#!/usr/bin/env python3
"""Train the sentiment model, evaluate it on the test split, and export a SavedModel version.

The same as `imdb-sentiment train`; --help tells more.
"""

from imdb_sentiment import cli
from imdb_sentiment.commands.train import main

if __name__ == "__main__":
    cli.run(main)
