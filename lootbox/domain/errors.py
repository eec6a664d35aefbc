"""The one exception tree. Every leaf carries the API ``code`` callers branch on.

HTTP statuses live in ``lootbox.api.errors``; the domain only names conditions.
"""

from __future__ import annotations

from typing import Any


class LootboxError(Exception):
    code = "INTERNAL_ERROR"
    default_message = "internal error"

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)


# --- authentication -------------------------------------------------------------------


class AuthenticationError(LootboxError):
    code = "INVALID_SIGNATURE"
    default_message = "request signature is invalid"


class MissingHeaders(AuthenticationError):
    code = "MISSING_HEADERS"
    default_message = "X-Key-Id, X-Timestamp and X-Signature are required"


class InvalidSignature(AuthenticationError):
    code = "INVALID_SIGNATURE"
    default_message = "unknown key id or signature mismatch"


class TimestampSkew(AuthenticationError):
    code = "TIMESTAMP_SKEW"
    default_message = "X-Timestamp is too far from server time"


# --- input ------------------------------------------------------------------------------


class ValidationFailed(LootboxError):
    code = "VALIDATION_ERROR"
    default_message = "request is invalid"


class UnsupportedMediaType(LootboxError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "send Content-Type: application/json"


# --- not found ----------------------------------------------------------------------------


class NotFound(LootboxError):
    code = "NOT_FOUND"
    default_message = "not found"


class InventoryItemNotFound(NotFound):
    code = "INVENTORY_ITEM_NOT_FOUND"
    default_message = "inventory item not found"


class RoundNotFound(NotFound):
    code = "ROUND_NOT_FOUND"
    default_message = "round not found"


class UnknownBox(NotFound):
    code = "UNKNOWN_BOX"
    default_message = "box version not found"


class OperatorNotFound(NotFound):
    code = "OPERATOR_NOT_FOUND"
    default_message = "operator not found"


class IdempotencyRecordNotFound(NotFound):
    code = "IDEMPOTENCY_RECORD_NOT_FOUND"
    default_message = "no idempotency record for this key"


class ApiKeyNotFound(NotFound):
    code = "API_KEY_NOT_FOUND"
    default_message = "api key not found"


# --- business rules -----------------------------------------------------------------------


class BusinessRuleViolation(LootboxError):
    """A rejection decided before any wallet call; never stored as a final answer."""


class CashbackNotAvailable(BusinessRuleViolation):
    code = "CASHBACK_NOT_AVAILABLE"
    default_message = "cashback is not available for this item"


class RoundNotRefundable(BusinessRuleViolation):
    code = "ROUND_NOT_REFUNDABLE"
    default_message = "only a held (pre-paid, unopened) round can be refunded"


class RefundNotAllowed(BusinessRuleViolation):
    code = "REFUND_NOT_ALLOWED"
    default_message = "refunds are disabled for this operator or box"


class RoundNotHeld(BusinessRuleViolation):
    code = "ROUND_NOT_HELD"
    default_message = "only a held round can be opened"


class BoxNotPlayable(BusinessRuleViolation):
    code = "BOX_NOT_PLAYABLE"
    default_message = "box version is superseded or inactive"


class CurrencyNotSupported(BusinessRuleViolation):
    code = "CURRENCY_NOT_SUPPORTED"
    default_message = "the operator has no rate for this currency"


class InvalidCatalog(BusinessRuleViolation):
    code = "INVALID_CATALOG"
    default_message = "catalog is invalid"


class KeyNotReleasable(BusinessRuleViolation):
    """On-call asked to release an idempotency key that is not stuck."""

    code = "KEY_NOT_RELEASABLE"
    default_message = "only an in-progress key whose lease has expired can be released"


class OperatorExists(BusinessRuleViolation):
    code = "OPERATOR_EXISTS"
    default_message = "an operator with this slug already exists"


# --- idempotency ----------------------------------------------------------------------------


class IdempotencyKeyReused(LootboxError):
    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "this idempotency key was used with a different request"


class IdempotencyKeyInUse(LootboxError):
    code = "IDEMPOTENCY_KEY_IN_USE"
    default_message = "a request with this idempotency key is still in progress"

    def __init__(self, message: str | None = None, *, retry_after_seconds: int = 1):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class KeyHeldElsewhere(IdempotencyKeyInUse):
    """The key's durable claim is held by a live request: the idempotency guard waits for
    its answer (briefly) instead of answering at once."""


class OperationInProgress(IdempotencyKeyInUse):
    """Another request's wallet call for the same item or round is in flight.

    Shares IDEMPOTENCY_KEY_IN_USE: for the caller it means the same thing, retry shortly.
    """

    default_message = "another money operation on this item or round is in flight"


# --- wallet ------------------------------------------------------------------------------------


class WalletError(LootboxError):
    pass


class WalletRefused(WalletError):
    """The wallet gave a definite no. ``code`` is the wallet's own (sanitised)."""

    code = "WALLET_REFUSED"
    default_message = "the wallet refused the operation"

    def __init__(self, code: str, message: str | None = None):
        super().__init__(message or self.default_message)
        self.code = code


class WalletUnavailable(WalletError):
    code = "WALLET_UNAVAILABLE"
    default_message = "the wallet is unavailable; the outcome is not known yet, retry later"


class ServiceUnavailable(LootboxError):
    """Our own storage failed mid-request; nothing was half-written, retry."""

    code = "SERVICE_UNAVAILABLE"
    default_message = "temporarily unavailable, retry later"
