"""Progress bars where a user waits, on stderr when it is a terminal. Elsewhere (CI, log files)
no bar is drawn: each stage's own log line says what was done, one line per stage."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

from .results import Phase

log = logging.getLogger(__name__)


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


class Phases:
    """A command's phases, timed as they run: each is logged as it ends, with its rate, and kept
    in order (`done`) for the run's metrics, so a run says where its time went."""

    def __init__(self) -> None:
        self.done: list[Phase] = []

    @contextmanager
    def __call__(self, name: str, rows: int | None = None) -> Iterator[Phase]:
        """Times the block; it may set the phase's rows when only the block knows them."""
        phase, t0 = Phase(name, rows=rows), time.perf_counter()
        yield phase
        phase.seconds = round(time.perf_counter() - t0, 1)
        self.done.append(phase)
        rate = phase.rows_per_second
        rows = f", {phase.rows:,} rows at {rate:,.0f}/s" if rate else ""
        log.info(f"phase: {name} took {phase.seconds:.0f}s{rows}")
