"""Inbound HMAC authentication (contract section 3), verified over the raw body bytes
before anything parses it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import g, request

from lootbox.api.body import check_json_limits, read_body
from lootbox.container import container
from lootbox.domain.errors import (
    InvalidSignature,
    MissingHeaders,
    TimestampSkew,
    UnsupportedMediaType,
)
from lootbox.domain.records import Operator
from lootbox.services.credentials import CredentialLookup
from lootbox.signing import HEADER_KEY_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_matches

UNIX_SECONDS = re.compile(r"^[0-9]{1,12}\Z")
KEY_ID = re.compile(r"^[\x21-\x7e]{1,64}\Z")


@dataclass(frozen=True)
class SignedRequest:
    method: str
    path: str
    body: bytes
    key_id: str | None
    timestamp: str | None
    signature: str | None


class Authenticator:
    def __init__(
        self,
        credentials: CredentialLookup,
        max_skew_seconds: int,
        clock: Callable[[], float] = time.time,
    ):
        self.credentials = credentials
        self.max_skew_seconds = max_skew_seconds
        self.clock = clock

    def authenticate(self, req: SignedRequest) -> Operator:
        """The operator behind a valid signature. Unknown, revoked and wrong all answer
        INVALID_SIGNATURE alike, so a caller cannot probe which key ids exist."""
        if not (req.key_id and req.timestamp and req.signature):
            raise MissingHeaders()
        if not UNIX_SECONDS.match(req.timestamp):
            raise TimestampSkew("X-Timestamp must be Unix seconds")
        if not KEY_ID.match(req.key_id):
            raise InvalidSignature()  # never looked up: it cannot be one of ours
        timestamp = int(req.timestamp)
        if abs(self.clock() - timestamp) > self.max_skew_seconds:
            raise TimestampSkew()
        found = self.credentials(req.key_id)
        if found is None:
            raise InvalidSignature()
        secret, operator = found
        if not signature_matches(
            secret, req.timestamp, req.method, req.path, req.body, req.signature
        ):
            raise InvalidSignature()
        return operator


def authenticate_s2s_request() -> None:
    """``before_request`` of every S2S blueprint: sets ``g.operator`` or raises.

    Order: size (413), signature (401), media type (415), then the JSON limits and the
    schema (400). The signature covers the exact bytes received, all of them.
    """
    body = read_body()
    headers = request.headers  # case-insensitive, read in place
    signed = SignedRequest(
        method=request.method,
        path=request.path,
        body=body,
        key_id=headers.get(HEADER_KEY_ID),
        timestamp=headers.get(HEADER_TIMESTAMP),
        signature=headers.get(HEADER_SIGNATURE),
    )
    g.operator = container().authenticator.authenticate(signed)
    if request.method == "POST":
        if request.mimetype != "application/json":
            raise UnsupportedMediaType()
        check_json_limits(body)
