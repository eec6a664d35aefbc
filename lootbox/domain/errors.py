"""The one exception tree. Each class is the one description of its condition: the
``code`` callers branch on, the HTTP ``status`` it is answered with, a ``title`` and
``when`` it happens. ``lootbox.api.errors`` answers with them and ``lootbox.api.openapi``
documents each operation's codes from the classes the operation declares.
"""

from __future__ import annotations

from typing import Any


class LootboxError(Exception):
    code = "INTERNAL_ERROR"
    status = 500
    title = "Internal error"
    when = "an unexpected failure of this service; nothing was half-written."
    default_message = "internal error"

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)


# --- authentication -------------------------------------------------------------------


class AuthenticationError(LootboxError):
    status = 401


class MissingHeaders(AuthenticationError):
    code = "MISSING_HEADERS"
    title = "A signing header is missing"
    when = "`X-Key-Id`, `X-Timestamp` or `X-Signature` is missing."
    default_message = "X-Key-Id, X-Timestamp and X-Signature are required"


class InvalidSignature(AuthenticationError):
    code = "INVALID_SIGNATURE"
    title = "Unknown or revoked key, or wrong signature"
    when = (
        "the key id is unknown or revoked, or the signature does not match the request"
        " (the cases are not told apart)."
    )
    default_message = "unknown key id or signature mismatch"


class TimestampSkew(AuthenticationError):
    code = "TIMESTAMP_SKEW"
    title = "Timestamp too far from the server's clock"
    when = (
        "`X-Timestamp` is not Unix seconds, or is more than 300 s (configurable) from the"
        " server's clock."
    )
    default_message = "X-Timestamp is too far from server time"


# --- input ------------------------------------------------------------------------------


class ValidationFailed(LootboxError):
    code = "VALIDATION_ERROR"
    status = 400
    title = "Invalid input"
    when = (
        "malformed JSON, a wrong type, a missing required field, an unknown field or query"
        " parameter, a value out of range, a bad currency, cursor or idempotency key;"
        " `details.fields` says which field and why. Nothing was executed."
    )
    default_message = "request is invalid"


class PayloadTooLarge(LootboxError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413
    title = "Body over the size limit"
    when = "the body is over the size limit (1 MiB by default, `MAX_CONTENT_LENGTH`)."
    default_message = "The data value transmitted exceeds the capacity limit."


class UnsupportedMediaType(LootboxError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415
    title = "Body is not JSON"
    when = "the body is not sent as `Content-Type: application/json`."
    default_message = "send Content-Type: application/json"


# --- not found ----------------------------------------------------------------------------


class NotFound(LootboxError):
    code = "NOT_FOUND"
    status = 404
    title = "No such resource"
    when = "nothing is at this path."
    default_message = "not found"


class InventoryItemNotFound(NotFound):
    code = "INVENTORY_ITEM_NOT_FOUND"
    title = "No such item"
    when = (
        "no such item for this operator, or it belongs to another player (the two are not"
        " told apart)."
    )
    default_message = "inventory item not found"


class RoundNotFound(NotFound):
    code = "ROUND_NOT_FOUND"
    title = "No such round"
    when = (
        "no such round for this operator, or it belongs to another player (the two are not"
        " told apart)."
    )
    default_message = "round not found"


class UnknownBox(NotFound):
    code = "UNKNOWN_BOX"
    title = "Unknown box or box version"
    when = "the box or box version does not exist in this operator's catalog."
    default_message = "box version not found"


class SeedPairNotFound(NotFound):
    code = "SEED_PAIR_NOT_FOUND"
    title = "No such seed pair"
    when = "no seed pair of this player has this `serverSeedHash` (current or revealed)."
    default_message = "no seed pair of this player has this hash"


class OperatorNotFound(NotFound):
    code = "OPERATOR_NOT_FOUND"
    title = "No such operator"
    when = "no operator has this slug (on-call and onboarding commands)."
    default_message = "operator not found"


class IdempotencyRecordNotFound(NotFound):
    code = "IDEMPOTENCY_RECORD_NOT_FOUND"
    title = "No record of this key"
    when = "neither Redis nor the database holds this idempotency key (on-call commands)."
    default_message = "no idempotency record for this key"


class ApiKeyNotFound(NotFound):
    code = "API_KEY_NOT_FOUND"
    title = "No such API key"
    when = "no API key has this id (onboarding commands)."
    default_message = "api key not found"


# --- business rules -----------------------------------------------------------------------


class BusinessRuleViolation(LootboxError):
    """A rejection decided before any wallet call; never stored as a final answer."""

    status = 422


class CashbackNotAvailable(BusinessRuleViolation):
    code = "CASHBACK_NOT_AVAILABLE"
    title = "The item cannot be cashed back"
    when = (
        "the item is not `unresolved` (already cashed back, shipped, ...), cashback is"
        " disabled for the operator or box, no rule gives a rate, the operator has no FX"
        " rate for `currency`, or the value rounds to zero."
    )
    default_message = "cashback is not available for this item"


class CurrencyNotSupported(BusinessRuleViolation):
    code = "CURRENCY_NOT_SUPPORTED"
    title = "No rate for this currency"
    when = "the operator has no FX rate for `currency`, or the price converts to nothing in it."
    default_message = "the operator has no rate for this currency"


class UnsupportedCurrency(BusinessRuleViolation):
    code = "UNSUPPORTED_CURRENCY"
    title = "Currency not configured"
    when = "`currency` is not the operator currency nor one it has a rate for."
    default_message = "this currency is not one the operator has configured"


class InvalidClientSeed(BusinessRuleViolation):
    code = "INVALID_CLIENT_SEED"
    title = "Malformed client seed"
    when = "`clientSeed` is not 1 to 64 printable ASCII characters without spaces."
    default_message = "a client seed is 1 to 64 printable ASCII characters without spaces"


class RoundNotRefundable(BusinessRuleViolation):
    code = "ROUND_NOT_REFUNDABLE"
    status = 409
    title = "The round is not held"
    when = "the round is not `held`: opened, bought with atomic open, already refunded, or voided."
    default_message = "only a held (pre-paid, unopened) round can be refunded"


class RefundNotAllowed(BusinessRuleViolation):
    code = "REFUND_NOT_ALLOWED"
    status = 403
    title = "Refunds disabled"
    when = "the operator's or a box's policy forbids refunds."
    default_message = "refunds are disabled for this operator or box"


class RoundNotHeld(BusinessRuleViolation):
    code = "ROUND_NOT_HELD"
    status = 409
    title = "The round is not held"
    when = "the round is not `held`: already opened, refunded or voided."
    default_message = "only a held round can be opened"


class BoxNotPlayable(BusinessRuleViolation):
    code = "BOX_NOT_PLAYABLE"
    status = 409
    title = "Box not playable"
    when = "the box is inactive, or the box version is superseded or inactive."
    default_message = "box version is superseded or inactive"


class InvalidCatalog(BusinessRuleViolation):
    code = "INVALID_CATALOG"
    title = "Invalid catalog"
    when = "a catalog import names its first problem with its path (CLI)."
    default_message = "catalog is invalid"


class KeyNotReleasable(BusinessRuleViolation):
    code = "KEY_NOT_RELEASABLE"
    status = 409
    title = "The key is not stuck"
    when = (
        "on-call asked to release an idempotency key that is not in progress with an expired lease."
    )
    default_message = "only an in-progress key whose lease has expired can be released"


class OperatorExists(BusinessRuleViolation):
    code = "OPERATOR_EXISTS"
    status = 409
    title = "Operator exists"
    when = "an operator with this slug already exists (onboarding)."
    default_message = "an operator with this slug already exists"


# --- idempotency ----------------------------------------------------------------------------


class IdempotencyKeyReused(LootboxError):
    code = "IDEMPOTENCY_KEY_REUSED"
    status = 422
    title = "Key already used for another request"
    when = (
        "this idempotency key (or `clientActionId`) was already used with a different"
        " request. Nothing was executed; use a new key for a new request."
    )
    default_message = "this idempotency key was used with a different request"


class IdempotencyKeyInUse(LootboxError):
    code = "IDEMPOTENCY_KEY_IN_USE"
    status = 409
    title = "Still running: retry shortly"
    when = (
        "a request with the same key, or another money operation on the same item or"
        " round, is still running. Retry after `Retry-After` seconds with the same key:"
        " you get its answer."
    )
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
    """The wallet gave a definite no. ``code`` is the wallet's own (sanitised), so this one
    class stands for every code a wallet may refuse with: build it with ``refusal``."""

    code = "WALLET_REFUSED"
    status = 422
    title = "The wallet refused"
    when = (
        "the wallet refused the operation: its own code (`[A-Z0-9_]{1,64}`, e.g."
        " `INSUFFICIENT_FUNDS`) and message passed through verbatim, or `WALLET_REFUSED`"
        " if its code is not of that form. No money moved; the item or round is as"
        " before and the caller may retry."
    )
    default_message = "the wallet refused the operation"

    def __init__(self, code: str, message: str | None = None):
        super().__init__(message or self.default_message)
        self.code = code


class PlayerBlocked(WalletRefused):
    code = "PLAYER_BLOCKED"
    status = 403
    title = "The wallet refused: player blocked"
    when = (
        "the wallet refused because the player is blocked (its code, passed through)."
        " Nothing changed."
    )
    default_message = "player is blocked"


def refusal(code: str, message: str | None = None) -> WalletRefused:
    """The wallet's refusal with its ``code``: ``PLAYER_BLOCKED`` has a status of its own."""
    if code == PlayerBlocked.code:
        return PlayerBlocked(code, message)
    return WalletRefused(code, message)


class WalletUnavailable(WalletError):
    code = "WALLET_UNAVAILABLE"
    status = 503
    title = "Wallet outcome unknown: retry"
    when = (
        "the wallet gave no definite answer (unreachable, timeout, 5xx, unintelligible)."
        " The operation stays pending; retry (any key) and the same wallet call is"
        " re-sent with its original key and amount."
    )
    default_message = "the wallet is unavailable; the outcome is not known yet, retry later"


class ServiceUnavailable(LootboxError):
    """Our own storage failed mid-request; nothing was half-written, retry."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    title = "Storage unavailable: retry"
    when = "this service's own storage failed; nothing was half-written. Retry with the same key."
    default_message = "temporarily unavailable, retry later"
