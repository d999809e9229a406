#!/usr/bin/env python3
"""Predict the sentiment of many review files on Ray Data, locally or on a Ray cluster.

The same as `imdb-sentiment batch-predict`; --help tells more.
"""

from imdb_sentiment import cli
from imdb_sentiment.commands.batch_predict import main

if __name__ == "__main__":
    cli.run(main)
