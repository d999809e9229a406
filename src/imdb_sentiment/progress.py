"""Progress bars where a user waits, on stderr when it is a terminal. Elsewhere (CI, log files)
no bar is drawn: each stage's own log line says what was done, one line per stage."""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm


def shown() -> bool:
    """A terminal, and the log not silenced with --quiet."""
    return sys.stderr.isatty() and logging.getLogger("imdb_sentiment").isEnabledFor(logging.INFO)


def bar(iterable=None, *, total: int | None = None, desc: str, unit: str = "review") -> tqdm:
    """A tqdm bar that clears itself when done (the stage's log line stays)."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        leave=False,
        dynamic_ncols=True,
        file=sys.stderr,
        disable=not shown(),
    )
