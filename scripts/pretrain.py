#!/usr/bin/env python3
"""Pretrain the LSTM encoder as language models on the unlabelled and training reviews.

The same as `imdb-sentiment pretrain`; --help tells more.
"""

from imdb_sentiment import cli
from imdb_sentiment.commands.pretrain import main

if __name__ == "__main__":
    cli.run(main)
