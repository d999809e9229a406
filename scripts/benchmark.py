#!/usr/bin/env python3
"""Speed of the default model on this machine, against the notebooks' way of doing the same work.

The same as `imdb-sentiment benchmark`; --help tells more.
"""

from imdb_sentiment import cli
from imdb_sentiment.commands.benchmark import main

if __name__ == "__main__":
    cli.run(main)
