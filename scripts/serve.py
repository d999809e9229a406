#!/usr/bin/env python3
"""Serve exported models over TF Serving's REST API, for machines without TF Serving.

The same as `imdb-sentiment serve`; --help tells more.
"""

from imdb_sentiment import cli
from imdb_sentiment.commands.serve import main

if __name__ == "__main__":
    cli.run(main)
