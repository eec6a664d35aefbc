"""Schemathesis hooks: sign every generated request as an operator backend would, and
give generated purchases fresh action ids.

Loaded by ``st run`` through ``SCHEMATHESIS_HOOKS=tests.contract.hooks``; the key
comes from ``LOOTBOX_CONTRACT_KEY_ID`` / ``LOOTBOX_CONTRACT_SECRET``. The signature is
computed by ``requests`` at the last moment (an ``AuthBase``), over the exact body bytes
that go on the wire and the path without the query string (contract section 3), so a
generated body is never re-serialised differently from what was signed.

``LOOTBOX_CONTRACT_SIGNING`` picks the mode: ``valid`` (default), ``none`` (send no
signing headers) or ``wrong`` (a signature under another secret): the last two are the
negative sanity runs, where every ``/api/s2s`` answer must be a documented 401.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import requests
import schemathesis

from lootbox.signing import HEADER_KEY_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, signed_headers

SIGNING_HEADERS = (HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)


class HmacSignature(requests.auth.AuthBase):
    """Sign a prepared request: the body it will send, the path it will hit."""

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        path = urlsplit(request.url or "").path
        headers = signed_headers(
            self.secret, int(time.time()), request.method or "GET", path, body, self.key_id
        )
        request.headers.update(headers)
        return request


class StripSignature(requests.auth.AuthBase):
    """Send no signing headers at all (schemathesis generates values for them otherwise)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        for name in SIGNING_HEADERS:
            request.headers.pop(name, None)
        return request


def auth_from_environment() -> requests.auth.AuthBase:
    mode = os.environ.get("LOOTBOX_CONTRACT_SIGNING", "valid")
    key_id = os.environ["LOOTBOX_CONTRACT_KEY_ID"]
    secret = os.environ["LOOTBOX_CONTRACT_SECRET"]
    if mode == "valid":
        return HmacSignature(key_id, secret)
    if mode == "wrong":
        return HmacSignature(key_id, secret + "-not-it")
    if mode == "none":
        return StripSignature()
    raise ValueError(f"LOOTBOX_CONTRACT_SIGNING={mode!r}: valid, wrong or none")


# The documented example of ``clientActionId``: schemathesis builds most cases around the
# documented examples, so nearly every generated purchase would reuse this one action id
# and be answered IDEMPOTENCY_KEY_REUSED. Real clients use a fresh id per action.
EXAMPLE_ACTION_ID = "act-7f3c2a"
_RUN = uuid.uuid4().hex[:8]
_SEQUENCE = itertools.count()


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    body = case.body
    if (
        case.path == "/api/s2s/purchase"
        and isinstance(body, dict)
        and body.get("clientActionId") == EXAMPLE_ACTION_ID
        and next(_SEQUENCE) % 4  # one in four keeps it: replays and reuse get tested too
    ):
        body["clientActionId"] = f"st-{_RUN}-{next(_SEQUENCE)}"
    kwargs["auth"] = auth_from_environment()


REFUSAL = {"none": "MISSING_HEADERS", "wrong": "INVALID_SIGNATURE"}


@schemathesis.check
def unsigned_requests_are_refused(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """In the negative runs: every ``/api/s2s`` request is refused with 401 and the code
    for what is wrong, before anything else is looked at (body, media type, business)."""
    mode = os.environ.get("LOOTBOX_CONTRACT_SIGNING", "valid")
    if mode == "valid" or not case.path.startswith("/api/s2s/"):
        return None
    if response.status_code == 405:  # routing comes first: a wrong method is 405 for anyone
        return None
    if response.status_code != 401:
        raise AssertionError(f"{mode} signature answered {response.status_code}, not 401")
    code = response.json()["error"]["code"]
    if code != REFUSAL[mode]:
        raise AssertionError(f"{mode} signature answered {code}, not {REFUSAL[mode]}")
    return True
