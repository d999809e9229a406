"""Files of reviews to predict (.txt, .csv, .jsonl), read record by record: each record with the
line it starts on and its review, or the reason it holds none. predict.py stops at the first such
reason; batch prediction sets the record aside and goes on."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator
from typing import NamedTuple

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}  # any other name: .txt


class Record(NamedTuple):
    line: int  # the line the record starts on, from 1
    review: str | None  # None when the record is malformed
    error: str | None  # why it is malformed
    raw: str  # the record as read, line ends included


def file_format(name: str) -> str:
    suffix = name[name.rfind(".") :].lower() if "." in name.rsplit("/", 1)[-1] else ""
    return FORMATS.get(suffix, "txt")


def records(f: Iterable[str], fmt: str) -> Iterator[Record]:
    """The records of a text file opened with newline="" (\\r, \\n and \\r\\n end a line; a
    quoted CSV field keeps its own) and, as predict.py reads, errors="replace".

    .txt: every line is a review, a blank one an empty review. .jsonl: a string or an object with a
    string `review` field per line; blank lines are skipped. .csv: a header with a `review` column,
    then rows of as many fields as the header; blank lines are skipped.
    """
    return {"txt": _txt, "jsonl": _jsonl, "csv": _csv}[fmt](f)


def _txt(f):
    for lineno, line in enumerate(f, 1):
        yield Record(lineno, line.rstrip("\r\n"), None, line)


def _jsonl(f):
    for lineno, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield Record(lineno, None, f"not valid JSON ({e.msg})", line)
            continue
        review = obj.get("review") if isinstance(obj, dict) else obj
        if isinstance(review, str):
            yield Record(lineno, review, None, line)
        else:
            yield Record(
                lineno, None, "expected a string or an object with a string 'review' field", line
            )


def _csv(f):
    # A review may be longer than the csv module's default field limit (128 KiB).
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    consumed, count = [], 0

    def lines():  # what the reader takes, so that a record's raw text and first line are known
        nonlocal count
        for line in f:
            consumed.append(line)
            count += 1
            yield line

    reader, columns = csv.reader(lines()), None
    while True:
        start = count + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            row, error = None, f"cannot be read as CSV ({e})"
        else:
            error = None
        raw = "".join(consumed)
        consumed.clear()
        if row == []:
            continue
        if columns is None and error is None:
            columns = [c.lstrip("\ufeff").strip().lower() for c in row]
            if "review" not in columns:
                yield Record(start, None, f"no 'review' column; found {', '.join(columns)}", raw)
                return
            position = columns.index("review")
        elif error is None and len(row) != len(columns):
            yield Record(start, None, f"expected {len(columns)} fields, found {len(row)}", raw)
        elif error is None:
            yield Record(start, row[position], None, raw)
        else:
            yield Record(start, None, error, raw)
