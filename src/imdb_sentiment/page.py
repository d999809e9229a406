"""The page the REST server answers `GET /` with, to try the model in a browser: type a review, see
the verdict, P(positive) and the words that drove it (the server's explain route), for a chosen
served version, beside that version's model card or its figures.

One self-contained document (page.html: HTML, CSS and a little plain script, nothing fetched from
elsewhere), so it works offline and behind a firewall. What the server knows goes into it as JSON
data, which the script shows with textContent only, never as markup; the Content-Security-Policy
lets the browser run only the page's own script and style (by hash) and connect only to the
server itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from pathlib import Path

from .card import CARD_FILE, read_card
from .files import UserError
from .http11 import Document

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).with_name("page.html").read_text(encoding="utf-8")
INFO_FILE = "model_info.json"
MAX_CARD_CHARS = 64 << 10  # of a model card shown: the page stays small whatever the card holds


def _source_hash(pattern: str) -> str:
    """The CSP source of the template's one element that the pattern's group holds."""
    digest = hashlib.sha256(re.search(pattern, TEMPLATE, re.S)[1].encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        f"script-src {_source_hash(r'<script>(.*?)</script>')}",
        f"style-src {_source_hash(r'<style>(.*?)</style>')}",
        "connect-src 'self'",  # the explain route
        "img-src data:",  # the empty icon, so that the browser asks the server for no favicon
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),  # the versions it lists change while the server runs
)


def render_page(model_name: str, notes: dict[int, tuple[str, str]]) -> Document:
    """The page for the served versions, each with its notes (title, text: version_notes)."""
    served = {
        "model": model_name,
        "newest": max(notes, default=None),
        "versions": [
            {"version": v, "notes_title": title, "notes": text}
            for v, (title, text) in sorted(notes.items())
        ],
    }
    # JSON inside a <script> element: with "<", ">" and "&" escaped no string (a model card's) can
    # end the element or open a comment in it; JSON.parse reads the escapes back.
    data = json.dumps(served)
    for char in "<>&":
        data = data.replace(char, f"\\u{ord(char):04x}")
    return Document(
        TEMPLATE.replace("__SERVED__", data).encode(), "text/html; charset=utf-8", HEADERS
    )


def version_notes(folder: Path) -> tuple[str, str]:
    """A version's model card, shown as text: its model_card.md or, for a version exported before
    cards, one made from its model_info.json's figures (card.read_card): (title, text)."""
    try:
        text = read_card(folder)
    except UserError as e:
        log.warning(f"{folder}: {e}")
        return "no model card", f"This version has no {CARD_FILE} and no readable {INFO_FILE}."
    made = not (folder / CARD_FILE).exists()
    title = f"made from {INFO_FILE} (no {CARD_FILE} yet)" if made else f"model card ({CARD_FILE})"
    return title, text[:MAX_CARD_CHARS]
