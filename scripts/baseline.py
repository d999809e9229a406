#!/usr/bin/env python3
"""TF-IDF (word 1-2-grams, sublinear tf) + logistic regression on the same splits as train.py.

The same as `imdb-sentiment baseline`; --help tells more.
"""

from imdb_sentiment import cli
from imdb_sentiment.commands.baseline import main

if __name__ == "__main__":
    cli.run(main)
