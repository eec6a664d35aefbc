"""What the SDK raises: one tree, the API ``code`` on every API error.

Callers branch on the exception class (the family) or on ``code``, never on ``message``::

    LootboxClientError                   anything this SDK raises
    ├── LootboxApiError                  the service answered with an error (code, status)
    │   ├── ValidationError              400 (413, 415): the request itself is wrong
    │   ├── AuthenticationError          401: key id, secret or clock
    │   ├── NotFoundError                404: no such item/round/box, or not this player's
    │   ├── ConflictError                409: the round is not in the state the call needs
    │   ├── BusinessRuleError            422/403: decided by the service's rules
    │   ├── WalletRefusedError           422/403: the operator's wallet said no (its code)
    │   ├── IdempotencyError
    │   │   ├── IdempotencyKeyInUseError 409: the same key is still running (retryable)
    │   │   └── IdempotencyKeyReusedError 422: the key was used for another request
    │   └── ServerError                  5xx
    │       └── UnavailableError         502/503/504: retry with the same key (retryable)
    ├── TransportError                   no answer at all (refused, reset, timeout)
    └── UnexpectedResponseError          a 2xx answer that is not the contract's shape

This module imports only the standard library, so the SDK can be vendored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

# A wallet's own refusal code is passed through verbatim by the service only if it looks
# like this (contract section 6); anything else arrives as WALLET_REFUSED.
_WALLET_CODE = re.compile(r"[A-Z0-9_]{1,64}")
_BODY_SNIPPET = 500  # characters of a non-JSON error body kept on the exception


class LootboxClientError(Exception):
    """Base of everything the SDK raises."""


class LootboxApiError(LootboxClientError):
    """The service answered with an error.

    ``code`` is the API code (``CASHBACK_NOT_AVAILABLE``, the wallet's own
    ``INSUFFICIENT_FUNDS``, ...); ``status`` the HTTP status; ``details`` the optional
    per-field details; ``request_id`` the answer's ``X-Request-Id`` (quote it to support);
    ``retry_after`` the ``Retry-After`` header in seconds, if any; ``attempts`` how many
    attempts the call made in all; ``body`` the raw answer (bytes), which is all there is
    when the body was not the JSON error envelope (a proxy's HTML page, say).
    """

    retryable = False

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: bytes = b"",
        attempts: int = 1,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details: Mapping[str, Any] = details or {}
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body
        self.attempts = attempts


class ValidationError(LootboxApiError):
    """400 ``VALIDATION_ERROR`` (``details["fields"]`` says which), 413, 415."""


class AuthenticationError(LootboxApiError):
    """401: ``MISSING_HEADERS``, ``INVALID_SIGNATURE`` (key id or secret), ``TIMESTAMP_SKEW``."""


class NotFoundError(LootboxApiError):
    """404: ``INVENTORY_ITEM_NOT_FOUND``, ``ROUND_NOT_FOUND``, ``UNKNOWN_BOX``,
    ``SEED_PAIR_NOT_FOUND``, ``NOT_FOUND``.

    "Not yours" and "does not exist" are the same answer by design.
    """


class ConflictError(LootboxApiError):
    """409: ``ROUND_NOT_REFUNDABLE``, ``ROUND_NOT_HELD``, ``BOX_NOT_PLAYABLE``."""


class BusinessRuleError(LootboxApiError):
    """422 or 403 decided by the service before any wallet call: ``CASHBACK_NOT_AVAILABLE``,
    ``CURRENCY_NOT_SUPPORTED``, ``UNSUPPORTED_CURRENCY``, ``REFUND_NOT_ALLOWED``,
    ``INVALID_CLIENT_SEED``. Nothing moved; the item, round or seed pair is unchanged."""


class WalletRefusedError(LootboxApiError):
    """The operator's wallet refused the money call; ``code`` is the wallet's own
    (``INSUFFICIENT_FUNDS``, ``PLAYER_BLOCKED`` (403), ..., or ``WALLET_REFUSED``).
    Nothing moved: an item stays unresolved, a held round stays held, a purchase's round
    is voided."""


class IdempotencyError(LootboxApiError):
    """A problem with the idempotency key rather than with the request."""


class IdempotencyKeyInUseError(IdempotencyError):
    """409 ``IDEMPOTENCY_KEY_IN_USE``: a request with this key is still running (or another
    money operation on the same item or round is in flight). Retry with the same key after
    ``retry_after`` seconds; the client does so by itself."""

    retryable = True


class IdempotencyKeyReusedError(IdempotencyError):
    """422 ``IDEMPOTENCY_KEY_REUSED``: the key was already used for a different request.
    Nothing was executed. A programming error: keys must name one operation."""


class ServerError(LootboxApiError):
    """5xx."""


class UnavailableError(ServerError):
    """502/503/504, ``WALLET_UNAVAILABLE`` or ``SERVICE_UNAVAILABLE``: the outcome is not
    known yet. Retry with the same key (the client does, up to its policy); the service
    re-drives the same wallet operation, never a second one."""

    retryable = True


class TransportError(LootboxClientError):
    """No HTTP answer: connection refused or reset, a timeout, a dropped connection.

    Raised when the attempts ran out (``attempts``) or the error is not worth retrying
    (TLS). ``__cause__`` and ``cause`` hold the last ``requests`` exception;
    ``request_id`` is the ``X-Request-Id`` the last attempt sent. The outcome of a money
    call is unknown: retry later with the same idempotency key.
    """

    def __init__(
        self, message: str, *, cause: BaseException, attempts: int, request_id: str | None
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.attempts = attempts
        self.request_id = request_id


class UnexpectedResponseError(LootboxClientError):
    """A success status whose body is not what the contract says (not JSON, a field
    missing or of the wrong type). A money call may have succeeded: repeating it with the
    same idempotency key replays the answer."""

    def __init__(self, message: str, *, status: int, body: bytes, request_id: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.request_id = request_id


# --- from an HTTP answer to an exception ----------------------------------------------------

_BY_CODE: dict[str, type[LootboxApiError]] = {
    "VALIDATION_ERROR": ValidationError,
    "PAYLOAD_TOO_LARGE": ValidationError,
    "UNSUPPORTED_MEDIA_TYPE": ValidationError,
    "MISSING_HEADERS": AuthenticationError,
    "INVALID_SIGNATURE": AuthenticationError,
    "TIMESTAMP_SKEW": AuthenticationError,
    "NOT_FOUND": NotFoundError,
    "INVENTORY_ITEM_NOT_FOUND": NotFoundError,
    "ROUND_NOT_FOUND": NotFoundError,
    "UNKNOWN_BOX": NotFoundError,
    "SEED_PAIR_NOT_FOUND": NotFoundError,
    "ROUND_NOT_REFUNDABLE": ConflictError,
    "ROUND_NOT_HELD": ConflictError,
    "BOX_NOT_PLAYABLE": ConflictError,
    "CASHBACK_NOT_AVAILABLE": BusinessRuleError,
    "CURRENCY_NOT_SUPPORTED": BusinessRuleError,
    "UNSUPPORTED_CURRENCY": BusinessRuleError,
    "REFUND_NOT_ALLOWED": BusinessRuleError,
    "INVALID_CLIENT_SEED": BusinessRuleError,
    "IDEMPOTENCY_KEY_IN_USE": IdempotencyKeyInUseError,
    "IDEMPOTENCY_KEY_REUSED": IdempotencyKeyReusedError,
    "WALLET_REFUSED": WalletRefusedError,
    "WALLET_UNAVAILABLE": UnavailableError,
    "SERVICE_UNAVAILABLE": UnavailableError,
}

_BY_STATUS: dict[int, type[LootboxApiError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: BusinessRuleError,
    404: NotFoundError,
    409: ConflictError,
    413: ValidationError,
    415: ValidationError,
    422: BusinessRuleError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}

# The code given to an error whose body carries none (an HTML page from a proxy, say).
_CODE_FOR_STATUS = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE_ENTITY",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}

# Codes named after an HTTP status (the service's framework errors, or ours for a body
# without a code): they say nothing more than the status, so they map by it.
_GENERIC_CODES = frozenset(_CODE_FOR_STATUS.values()) | {"HTTP_ERROR"}


def error_class(code: str, status: int, *, wallet_call: bool) -> type[LootboxApiError]:
    """The exception class for an error answer.

    Known codes map to their family. Any other code on a 422/403 from an endpoint that
    calls the wallet (purchase, cashout, cancel) is the wallet's own refusal code, passed
    through verbatim by the service. Anything else maps by HTTP status, and an unknown
    status to ``ServerError`` (5xx) or ``LootboxApiError``.
    """
    known = _BY_CODE.get(code)
    if known is not None:
        return known
    if (
        wallet_call
        and status in (403, 422)
        and code not in _GENERIC_CODES
        and _WALLET_CODE.fullmatch(code)
    ):
        return WalletRefusedError
    by_status = _BY_STATUS.get(status)
    if by_status is not None:
        return by_status
    return ServerError if status >= 500 else LootboxApiError


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; ``None`` if absent or
    unreadable (never negative)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(
    status: int,
    body: bytes,
    *,
    request_id: str | None,
    retry_after: str | None,
    wallet_call: bool,
    attempts: int = 1,
) -> LootboxApiError:
    """Build the typed exception for an error answer, whatever its body: the contract's
    envelope ``{"error": {"code", "message", "details"?}}``, or anything else (HTML, empty,
    truncated JSON), which still gets a code derived from the status."""
    code: str | None = None
    message: str | None = None
    details: Mapping[str, Any] | None = None
    try:
        document = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        error = document["error"]
        if isinstance(error.get("code"), str) and error["code"]:
            code = error["code"]
        if isinstance(error.get("message"), str):
            message = error["message"]
        if isinstance(error.get("details"), dict):
            details = error["details"]
    if code is None:
        code = _CODE_FOR_STATUS.get(status, "HTTP_ERROR")
    if message is None:
        snippet = body[:_BODY_SNIPPET].decode("utf-8", "replace").strip()
        message = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    cls = error_class(code, status, wallet_call=wallet_call)
    return cls(
        code,
        message,
        status=status,
        details=details,
        request_id=request_id,
        retry_after=parse_retry_after(retry_after),
        body=body,
        attempts=attempts,
    )
