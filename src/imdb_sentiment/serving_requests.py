"""What the servers take from a client: `ClientError`, a request that fails by the client's doing
(its HTTP status, and Retry-After for a 503), and the reviews of a predict request, checked."""

from __future__ import annotations

import json

from .export import INPUT_NAME

RETRY_AFTER_SECONDS = 1


class ClientError(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def decode_json(raw: bytes):
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ClientError(400, "the request body is not valid UTF-8") from None
    except json.JSONDecodeError as e:
        raise ClientError(400, f"JSON Parse error: {e.msg} at offset {e.pos}") from None


def check_count(reviews: list, max_batch: int) -> None:
    """Refuses a request of no review or of more than max_batch."""
    if not reviews:
        raise ClientError(400, "no instances given")
    if len(reviews) > max_batch:
        raise ClientError(400, f"{len(reviews)} instances in one request; the limit is {max_batch}")


def parse_reviews(body: dict, max_batch: int) -> tuple[list[bytes], bool]:
    """The reviews of a predict request as UTF-8, and whether it used the row ("instances")
    format."""
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise ClientError(
            400, 'the request must be a JSON object with exactly one of "instances" or "inputs"'
        )
    if body.get("signature_name", "serving_default") != "serving_default":
        raise ClientError(
            400,
            f"unknown signature_name {body['signature_name']!r}; this model has serving_default",
        )
    rows = "instances" in body
    data = body["instances"] if rows else body["inputs"]
    if isinstance(data, dict):  # named inputs: {"review": [...]}
        if set(data) != {INPUT_NAME}:
            raise ClientError(400, f"the only input is {INPUT_NAME!r}; got {sorted(data)}")
        data = data[INPUT_NAME]
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, list):
        raise ClientError(400, "expected a list of review strings")
    reviews = [d[INPUT_NAME] if isinstance(d, dict) and set(d) == {INPUT_NAME} else d for d in data]
    if not all(isinstance(r, str) for r in reviews):
        raise ClientError(400, f"every instance must be a string (or {{{INPUT_NAME!r}: string}})")
    check_count(reviews, max_batch)
    try:  # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 string holds
        return [r.encode("utf-8") for r in reviews], rows
    except UnicodeEncodeError as e:
        raise ClientError(400, f"an instance is not valid Unicode: {e.reason}") from None
