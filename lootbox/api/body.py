"""The raw request body: read whole or refused, and checked for what the JSON parser
cannot survive, before anything verifies or parses it.

Two gaps below us. Werkzeug stops a body without a Content-Length (chunked) at
``MAX_CONTENT_LENGTH`` and returns the prefix as if it were all. And the stdlib ``json``
that webargs parses with raises ``RecursionError`` on deep nesting and ``ValueError`` on
integers of more digits than Python converts, neither of which webargs answers with a 400.
"""

from __future__ import annotations

import re

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from lootbox.domain.errors import ValidationFailed

# The deepest valid body has 3 levels ({"reels": [{...}]}); far below the recursion limit.
MAX_JSON_DEPTH = 32
# Above every string field's length (255 at most), so no valid body has a longer run of
# digits; and Python's integer conversion limit cannot be set below 640.
MAX_NUMBER_DIGITS = 640

# A run of more digits than that, found without rescanning inside a run (linear time).
_LONG_DIGIT_RUN = re.compile(rb"(?<![0-9])[0-9]{%d}" % (MAX_NUMBER_DIGITS + 1))
# A JSON string, possibly unterminated (the parser refuses it, we must not rescan it), a
# bracket, or a long digit run: brackets and digits inside strings are not structure.
_TOKEN = re.compile(
    rb'"(?:[^"\\]++|\\.)*+"?|[\[{]|[\]}]|' + _LONG_DIGIT_RUN.pattern,
    re.DOTALL,
)


def read_body() -> bytes:
    """The whole body (cached for the parser); 413 ``PAYLOAD_TOO_LARGE`` if it is over
    ``MAX_CONTENT_LENGTH``, whether it declared a Content-Length or not."""
    body = request.get_data(cache=True)
    if _cut_at_the_limit(body):
        raise RequestEntityTooLarge()
    return body


def _cut_at_the_limit(body: bytes) -> bool:
    """Werkzeug reads a body without a Content-Length up to the limit and stops there. One
    more byte from the server's own stream (it ends the body: ``wsgi.input_terminated``)
    tells a body of exactly the limit from a longer one. Without that mark werkzeug reads
    nothing at all, and neither does this."""
    if request.content_length is not None:
        return False  # checked against the limit before anything was read
    limit = request.max_content_length
    return limit is not None and len(body) >= limit and bool(request.input_stream.read(1))


def check_json_limits(body: bytes) -> None:
    """400 ``VALIDATION_ERROR`` for a JSON body nested deeper than ``MAX_JSON_DEPTH`` or
    with a number of more than ``MAX_NUMBER_DIGITS`` digits. Almost every body has fewer
    brackets than the depth limit and is shorter than a long number: two counts and a
    length decide, and only the others are scanned."""
    openers = body.count(b"[") + body.count(b"{")
    if openers <= MAX_JSON_DEPTH and len(body) <= MAX_NUMBER_DIGITS:
        return
    if openers <= MAX_JSON_DEPTH and not _LONG_DIGIT_RUN.search(body):
        return
    depth = 0
    for token in _TOKEN.finditer(body):
        first = token[0][:1]
        if first in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise _invalid_json(f"nested more than {MAX_JSON_DEPTH} levels deep")
        elif first in (b"]", b"}"):
            depth -= 1
        elif first != b'"':
            raise _invalid_json(f"a number of more than {MAX_NUMBER_DIGITS} digits")


def _invalid_json(reason: str) -> ValidationFailed:
    # The shape of webargs' own answer to malformed JSON.
    return ValidationFailed(details={"fields": [f"Invalid JSON body: {reason}."]})
