"""The servers' settings, free of TensorFlow so that `serve --help` takes its defaults from here
without loading it: the limits on what clients may hold, TF Serving's batching parameters and its
batching_parameters_file."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from .files import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What the clients together may hold of the server; beyond it they get 4xx/503 or a closed
    connection, never an unbounded wait or an unbounded number of threads."""

    max_body: int = 8 << 20  # bytes of one request body (REST) or message (gRPC)
    max_batch: int = 1024  # reviews in one request
    read_timeout: float = 30.0  # seconds of silence while a request is being read or answered
    idle_timeout: float = 60.0  # seconds a keep-alive connection waits for its next request
    max_connections: int = 256  # open connections
    max_queued: int = 128  # predict requests waiting for or in a model call


@dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's batching parameters, with its names and meanings."""

    max_batch_size: int = 256  # most reviews in one model call
    batch_timeout_micros: int = 2000  # longest a batch waits for more requests before it runs
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)  # calls at once
    max_enqueued_batches: int = 100  # batches waiting for a thread; more requests get 503

    def __post_init__(self):
        for f in fields(self):
            least = 0 if f.name == "batch_timeout_micros" else 1
            if getattr(self, f.name) < least:
                raise UserError(f"batching parameter {f.name} must be at least {least}")


def default(cls, name: str):
    """A dataclass field's default, None where a factory makes it at run time."""
    f = next(f for f in fields(cls) if f.name == name)
    return None if f.default is MISSING else f.default


# Fields of TF Serving's BatchingParameters that have no meaning here: its signature takes a
# batch of strings of any length, so there is nothing to pad, and one thread pool serves all.
_IGNORED_BATCHING_FIELDS = {
    "pad_variable_length_inputs",
    "thread_pool_name",
    "allowed_batch_sizes",
    "enable_large_batch_splitting",
    "max_execution_batch_size",
}


def read_batching_parameters(path: Path) -> dict[str, int]:
    """The fields set in a TF Serving batching_parameters_file (protobuf text format, as
    `max_batch_size { value: 256 }`), so that one file configures both servers."""
    try:
        text = re.sub(r"#[^\n]*", "", Path(path).read_text())
    except OSError as e:
        raise UserError(f"{path}: cannot read the batching parameters ({e.strerror})") from None
    entry = re.compile(r"\s*(\w+)\s*(?:\{\s*value\s*:\s*([^\s}]+)\s*\}|:\s*(\S+))\s*")
    known = {f.name for f in fields(BatchingParameters)}
    out, pos = {}, 0
    while pos < len(text.rstrip()):
        m = entry.match(text, pos)
        if not m:
            raise UserError(
                f"{path}: cannot read {text[pos:].split()[0]!r}; expected lines such "
                "as `max_batch_size { value: 256 }` (TF Serving's format)"
            )
        name, value = m[1], m[2] or m[3]
        if name in known and value.isdigit():
            out[name] = int(value)
        elif name in _IGNORED_BATCHING_FIELDS:
            log.info(f"{path}: {name} has no effect here")
        else:
            raise UserError(
                f"{path}: {name} {value!r} is not a batching parameter this server "
                f"takes; known: {', '.join(sorted(known))}, each an integer"
            )
        pos = m.end()
    return out
