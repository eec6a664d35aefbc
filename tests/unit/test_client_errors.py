"""The SDK's exception mapping: every error answer becomes a typed exception, whatever
its body, and every code the service can send lands in the right family."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from lootbox.api.errors import HTTP_CODES
from lootbox.client import (
    AuthenticationError,
    BusinessRuleError,
    ConflictError,
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    LootboxApiError,
    LootboxClientError,
    NotFoundError,
    ServerError,
    UnavailableError,
    ValidationError,
    WalletRefusedError,
)
from lootbox.client.errors import error_class, error_from_response, parse_retry_after
from lootbox.domain import errors as domain

# Codes only the CLI produces; the S2S API never answers them.
CLI_ONLY = {
    "INTERNAL_ERROR",
    "OPERATOR_NOT_FOUND",
    "IDEMPOTENCY_RECORD_NOT_FOUND",
    "API_KEY_NOT_FOUND",
    "INVALID_CATALOG",
    "KEY_NOT_RELEASABLE",
    "OPERATOR_EXISTS",
}

FAMILIES: dict[int, tuple[type[LootboxApiError], ...]] = {
    400: (ValidationError,),
    401: (AuthenticationError,),
    403: (BusinessRuleError, WalletRefusedError),
    404: (NotFoundError,),
    409: (ConflictError, IdempotencyKeyInUseError),
    413: (ValidationError,),
    415: (ValidationError,),
    422: (BusinessRuleError, IdempotencyKeyReusedError, WalletRefusedError),
    503: (UnavailableError,),
}


def envelope(code: str, message: str = "text", details: str = "") -> bytes:
    extra = f',"details":{details}' if details else ""
    return f'{{"error":{{"code":"{code}","message":"{message}"{extra}}}}}'.encode()


def s2s_domain_errors() -> list[domain.LootboxError]:
    """One instance of every class of the domain's tree that the S2S API can answer."""
    found: list[domain.LootboxError] = []
    pending: list[type[domain.LootboxError]] = [domain.LootboxError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        exc = domain.refusal(cls.code) if issubclass(cls, domain.WalletRefused) else cls()
        if exc.code not in CLI_ONLY:
            found.append(exc)
    return found


def test_the_domain_tree_has_s2s_codes_to_check() -> None:
    assert len({exc.code for exc in s2s_domain_errors()}) >= 15


@pytest.mark.parametrize("exc", s2s_domain_errors(), ids=lambda exc: type(exc).__name__)
def test_every_code_the_service_sends_maps_to_the_family_of_its_status(
    exc: domain.LootboxError,
) -> None:
    status = exc.status

    cls = error_class(exc.code, status, wallet_call=True)

    assert issubclass(cls, FAMILIES[status]), (exc.code, status, cls)
    # A code of the service's own is never mistaken for a wallet's refusal code.
    assert cls is not WalletRefusedError or isinstance(exc, domain.WalletRefused)


@pytest.mark.parametrize("status,code", sorted(HTTP_CODES.items()))
def test_framework_codes_map_by_status(status: int, code: str) -> None:
    cls = error_class(code, status, wallet_call=True)

    if status in FAMILIES:
        assert issubclass(cls, FAMILIES[status])
        assert cls is not WalletRefusedError
    else:
        assert cls is LootboxApiError


@pytest.mark.parametrize(
    "code,status,expected",
    [
        ("INSUFFICIENT_FUNDS", 422, WalletRefusedError),
        ("PLAYER_BLOCKED", 403, WalletRefusedError),
        ("DUPLICATE_TRANSACTION", 422, WalletRefusedError),
        ("WALLET_REFUSED", 422, WalletRefusedError),
    ],
)
def test_a_wallets_own_code_on_a_money_call_is_a_wallet_refusal(
    code: str, status: int, expected: type[LootboxApiError]
) -> None:
    assert error_class(code, status, wallet_call=True) is expected


@pytest.mark.parametrize("wallet_call", [True, False])
def test_the_seed_pair_codes_are_the_services_own_never_a_wallets(wallet_call: bool) -> None:
    # A rotation with a malformed client seed is 422 like a wallet refusal, but not one.
    assert error_class("SEED_PAIR_NOT_FOUND", 404, wallet_call=wallet_call) is NotFoundError
    assert error_class("INVALID_CLIENT_SEED", 422, wallet_call=wallet_call) is BusinessRuleError


def test_an_unknown_code_on_a_call_without_a_wallet_maps_by_status() -> None:
    assert error_class("SOMETHING_NEW", 422, wallet_call=False) is BusinessRuleError
    assert error_class("SOMETHING_NEW", 409, wallet_call=True) is ConflictError
    assert error_class("SOMETHING_NEW", 418, wallet_call=True) is LootboxApiError
    assert error_class("SOMETHING_NEW", 500, wallet_call=True) is ServerError
    assert error_class("SOMETHING_NEW", 504, wallet_call=True) is UnavailableError
    assert error_class("lowercase code", 422, wallet_call=True) is BusinessRuleError


def test_the_envelope_gives_code_message_details_and_request_id() -> None:
    error = error_from_response(
        400,
        envelope("VALIDATION_ERROR", "request is invalid", '{"fields":{"currency":["bad"]}}'),
        request_id="req-1",
        retry_after=None,
        wallet_call=True,
    )

    assert isinstance(error, ValidationError)
    assert (error.code, error.status, error.message) == (
        "VALIDATION_ERROR",
        400,
        "request is invalid",
    )
    assert error.details == {"fields": {"currency": ["bad"]}}
    assert error.request_id == "req-1"
    assert str(error) == "400 VALIDATION_ERROR: request is invalid"
    assert not error.retryable


@pytest.mark.parametrize(
    "status,body,expected,code",
    [
        (502, b"<html><body>Bad Gateway</body></html>", UnavailableError, "BAD_GATEWAY"),
        (503, b"<html>down for maintenance</html>", UnavailableError, "SERVICE_UNAVAILABLE"),
        (504, b"", UnavailableError, "GATEWAY_TIMEOUT"),
        (500, b"Internal Server Error", ServerError, "INTERNAL_ERROR"),
        (404, b"<h1>Not Found</h1>", NotFoundError, "NOT_FOUND"),
        (401, b'{"error": "nope"}', AuthenticationError, "UNAUTHORIZED"),
        (422, b'{"error": {"code": 7}}', BusinessRuleError, "UNPROCESSABLE_ENTITY"),
        (409, b'{"error": {"code": "IDEMPOTENCY_KEY_IN', ConflictError, "CONFLICT"),
        (400, b"\xff\xfe not utf-8", ValidationError, "VALIDATION_ERROR"),
        (418, b"[]", LootboxApiError, "HTTP_ERROR"),
    ],
)
def test_a_body_that_is_not_the_envelope_still_gives_a_typed_exception(
    status: int, body: bytes, expected: type[LootboxApiError], code: str
) -> None:
    error = error_from_response(status, body, request_id=None, retry_after=None, wallet_call=True)

    assert type(error) is expected
    assert (error.code, error.status, error.body) == (code, status, body)
    assert error.message.startswith(f"HTTP {status}")
    assert isinstance(error, LootboxClientError)


def test_a_long_html_page_is_cut_in_the_message_but_kept_whole_in_body() -> None:
    page = b"<html>" + b"x" * 10_000 + b"</html>"

    error = error_from_response(502, page, request_id=None, retry_after=None, wallet_call=False)

    assert len(error.message) < 600
    assert error.body == page


def test_in_use_carries_retry_after_and_is_retryable() -> None:
    error = error_from_response(
        409,
        envelope("IDEMPOTENCY_KEY_IN_USE"),
        request_id="r",
        retry_after="2",
        wallet_call=True,
    )

    assert isinstance(error, IdempotencyKeyInUseError) and isinstance(error, LootboxApiError)
    assert error.retry_after == 2.0 and error.retryable


def test_retry_after_reads_seconds_and_http_dates_and_ignores_garbage() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)

    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert 25 <= (parse_retry_after(soon) or 0) <= 31
    assert parse_retry_after(past) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
