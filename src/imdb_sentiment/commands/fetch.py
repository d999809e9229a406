"""Fetch the IMDB reviews (and, for more than 50 dimensions, the GloVe archive) into the caches.

Data sources, in order: a copy already in the cache folder; Kaggle (when credentials exist:
KAGGLE_API_TOKEN, ~/.kaggle/access_token or ~/.kaggle/kaggle.json); the Stanford aclImdb tarball.
Downloads are SHA-256 checked and kept in the cache. Training fetches on its own too; this
script is for preparing a machine before it goes offline.
"""

import logging
from pathlib import Path

from imdb_sentiment import cli

log = logging.getLogger(__name__)


def main(argv=None) -> int:
    from imdb_sentiment import data, embeddings
    from imdb_sentiment.config import Config

    p = cli.Parser(__doc__)
    p.add_argument("--cache-dir", type=Path, default=data.DEFAULT_CACHE, help="default %(default)s")
    p.add_argument(
        "--glove-dim",
        type=int,
        default=50,
        choices=(50, 100, 200, 300),
        help="50: check the offline package; more: download glove.6B.zip into embeddings/",
    )
    args = p.parse_args(argv)

    path, how = data.find_source(None, args.cache_dir)
    raw = data.read_reviews(path)
    log.info(f"data: {path} ({how}): {len(raw)} reviews")
    if args.glove_dim > 50:
        log.info(f"glove: {embeddings.download_glove()}")
    else:
        _, report = embeddings.embedding_matrix(["the", "movie"], Config())
        log.info(f"glove: {report['source']} is installed")
    return 0
