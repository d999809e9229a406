#!/usr/bin/env python3
"""Plot the GloVe vectors of chosen words in 2-D (PCA and t-SNE), coloured by the model's polarity.

The same as `imdb-sentiment visualize`; --help tells more.
"""

from imdb_sentiment import cli
from imdb_sentiment.commands.visualize import main

if __name__ == "__main__":
    cli.run(main)
