#!/usr/bin/env python3
"""Evaluate a trained model again and write its report (report.md and PNG plots).

The same as `imdb-sentiment evaluate`; --help tells more.
"""

from imdb_sentiment import cli
from imdb_sentiment.commands.evaluate import main

if __name__ == "__main__":
    cli.run(main)
