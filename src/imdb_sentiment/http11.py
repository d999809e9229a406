"""HTTP/1.1's framing on an asyncio connection, held to what a server meets in the open: a
request's head within its limits, its body by Content-Length alone, `Refused` for framing that
cannot be trusted, the answer's bytes (JSON, or a `Document`), and a closing connection's
lingering."""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import re
import time
from dataclasses import dataclass
from http import HTTPStatus

from .serving_requests import ClientError

# What http.server allows a request's head: lines of 64 KiB, 100 header fields.
MAX_LINE = 1 << 16
MAX_HEADERS = 100
# A body over the limit is still read and thrown away up to this many times the limit, so that the
# client, which sends it all before it reads, gets the 413; beyond that the connection is closed.
DRAIN_FACTOR = 8
# How long a closing connection still reads what the client sends: closing with unread bytes makes
# the kernel send a reset, which can destroy the answer before the client reads it.
LINGER_SECONDS = 1.0


class Refused(ClientError):
    """A request whose framing cannot be trusted: answered, then the connection is closed, since
    the next request would start at an unknown byte."""


class Request:
    def __init__(self, line: str, headers: dict[str, list[str]]):
        self.line = line
        words = line.split()
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            raise Refused(400, f"bad request line {line[:100]!r}")
        self.method, self.target, self.version = words
        if not re.fullmatch(r"HTTP/1\.[01]", self.version):
            raise Refused(505, f"HTTP version {self.version[:20]!r} is not served; use HTTP/1.1")
        self.headers = headers
        tokens = ",".join(headers.get("connection", [])).lower()
        self.keep_alive = (
            "close" not in tokens if self.version == "HTTP/1.1" else "keep-alive" in tokens
        )

    def body_length(self) -> int:
        if "transfer-encoding" in self.headers:
            raise Refused(411, "send the body with a Content-Length, not chunked")
        values = self.headers.get("content-length", [])
        if not values:
            if self.method == "POST":
                raise Refused(411, "Content-Length is required")
            return 0
        if len(values) > 1 or not re.fullmatch(r"\d{1,15}", values[0]):
            raise Refused(400, f"malformed Content-Length: {', '.join(values)!r}")
        return int(values[0])

    def expects_continue(self) -> bool:
        """Whether the client waits for a 100 Continue before it sends the body."""
        return self.version == "HTTP/1.1" and any(
            v.lower() == "100-continue" for v in self.headers.get("expect", [])
        )


async def read_head(reader: asyncio.StreamReader, first: bytes) -> Request:
    """The request line and header fields, after the request's first byte."""
    try:
        line = first if first == b"\n" else first + await reader.readuntil(b"\n")
        while line in (b"\r\n", b"\n"):  # blank lines before a request are ignored (RFC 9112)
            line = await reader.readuntil(b"\n")
        headers: dict[str, list[str]] = {}
        for _ in range(MAX_HEADERS + 1):
            field = await reader.readuntil(b"\n")
            if field in (b"\r\n", b"\n"):
                return Request(line.decode("latin-1").strip(), headers)
            name, colon, value = field.decode("latin-1").partition(":")
            if not colon or not name or name != name.strip():  # also obsolete line folding
                raise Refused(400, f"malformed header field {field[:100]!r}")
            headers.setdefault(name.lower(), []).append(value.strip())
    except asyncio.LimitOverrunError:
        raise Refused(431, f"a line of the request's head is over {MAX_LINE} bytes") from None
    raise Refused(431, f"more than {MAX_HEADERS} header fields")


class Body:
    """A request's body on its connection. `unread` is how many of its bytes are not read yet;
    None where that is not known (no length, or a read that failed), and then the connection can
    carry no other request."""

    def __init__(self, reader: asyncio.StreamReader, read_timeout: float, max_body: int):
        self.reader = reader
        self.read_timeout = read_timeout
        self.max_body = max_body
        self.unread: int | None = None

    async def _read(self, n: int) -> bytes:
        """Up to n bytes, each part within the read timeout."""
        async with asyncio.timeout(self.read_timeout):
            return await self.reader.read(n)

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; one over max_body, or over a route's own smaller limit, is refused
        (413)."""
        limit = self.max_body if limit is None else min(limit, self.max_body)
        if self.unread > limit:
            raise ClientError(
                413, f"request body of {self.unread} bytes is over the limit of {limit}"
            )
        parts = []
        while self.unread > 0:
            chunk = await self._read(self.unread)
            if not chunk:
                self.unread = None
                raise ClientError(400, "the request body ended before its Content-Length")
            parts.append(chunk)
            self.unread -= len(chunk)
        return b"".join(parts)

    async def skip(self) -> None:
        """Reads and drops what an error left unread, so that the connection can carry the next
        request; a rest too large to read is left for the connection's close."""
        if self.unread is None or not 0 < self.unread <= DRAIN_FACTOR * self.max_body:
            return
        try:
            while self.unread > 0 and (chunk := await self._read(min(self.unread, 1 << 20))):
                self.unread -= len(chunk)
        except TimeoutError:
            self.unread = None


@functools.lru_cache(maxsize=1)
def http_date(second: int) -> str:
    """A second as the Date header gives it; made once for all the answers within it."""
    return email.utils.formatdate(second, usegmt=True)


@dataclass(frozen=True)
class Document:
    """An answer other than JSON: its bytes, their media type, and header fields of its own."""

    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def response(
    status: int, obj: dict | Document, retry_after: int | None = None, close: bool = False
) -> bytes:
    """A JSON answer (or a Document), head and body in one write (one system call, and nothing for
    Nagle's algorithm to hold back until the client's delayed ACK)."""
    if not isinstance(obj, Document):
        obj = Document(json.dumps(obj).encode(), "application/json")
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nServer: imdb-sentiment\r\n"
        f"Date: {http_date(int(time.time()))}\r\nContent-Type: {obj.content_type}\r\n"
        f"Content-Length: {len(obj.body)}\r\n"
    )
    head += "".join(f"{name}: {value}\r\n" for name, value in obj.headers)
    if retry_after is not None:
        head += f"Retry-After: {retry_after}\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode() + obj.body


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Ends our side of a connection and reads what the client still sends, for a moment, so that
    closing it does not reset the answer away (Apache's "lingering close")."""
    try:
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(LINGER_SECONDS):
            while await reader.read(1 << 16):
                pass
    except (OSError, TimeoutError):
        pass
