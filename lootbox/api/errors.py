"""The one place exceptions become HTTP: ``{"error": {"code", "message", "details"?}}``.

No input ever yields HTML or a bare 500: every HTTP exception, every ``LootboxError``
and anything unexpected leaves in the envelope.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from flask import Flask, Response, current_app
from flask_smorest import Api
from werkzeug.exceptions import HTTPException, Unauthorized

from lootbox.api.observability import note_error_code, note_outcome
from lootbox.domain import errors as e
from schemas.s2s import ErrorSchema

log = logging.getLogger("lootbox.api")

WEBARGS_PLACES = {"json", "query", "path"}

# Werkzeug's HTTP errors (routing, size limit, content type) in our envelope: the codes of
# the classes that document them, and generic codes for the statuses nothing documents.
HTTP_CODES = {
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    429: "TOO_MANY_REQUESTS",
    **{
        cls.status: cls.code
        for cls in (e.ValidationFailed, e.NotFound, e.PayloadTooLarge, e.UnsupportedMediaType)
    },
    405: "METHOD_NOT_ALLOWED",
}


def outcome_for(exc: e.LootboxError) -> str:
    """The access log's ``outcome`` for an error (lootbox.api.observability)."""
    if isinstance(exc, e.IdempotencyKeyInUse):
        return "in_use"
    if isinstance(exc, e.IdempotencyKeyReused):
        return "mismatch"
    if isinstance(exc, e.WalletRefused):
        return "refused"
    if isinstance(exc, e.WalletUnavailable | e.ServiceUnavailable):
        return "unavailable"
    return "rejected" if exc.status < 500 else "error"


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    note_error_code(code)
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    response = cast(Response, current_app.json.response({"error": body}))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_lootbox_error(exc: e.LootboxError) -> Response:
    headers = {}
    if isinstance(exc, e.IdempotencyKeyInUse):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    status = exc.status
    note_outcome(outcome_for(exc))
    if status >= 500:
        log.warning("%s: %s", exc.code, exc.message, exc_info=exc.__cause__ is not None)
    return error_response(status, exc.code, exc.message, exc.details, headers)


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    note_outcome("rejected" if status < 500 else "error")
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if status in (400, 422) and messages is not None:
        # webargs puts field errors under their location ("json", "query"); callers want
        # the fields.
        details = messages
        while isinstance(details, dict) and len(details) == 1 and set(details) & WEBARGS_PLACES:
            details = next(iter(details.values()))
        return error_response(400, "VALIDATION_ERROR", "request is invalid", {"fields": details})
    code = HTTP_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "HTTP_ERROR")
    headers = {}
    if status == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    if isinstance(exc, Unauthorized) and exc.www_authenticate:
        headers["WWW-Authenticate"] = ", ".join(str(w) for w in exc.www_authenticate)
    return error_response(status, code, exc.description or exc.name, headers=headers)


def handle_unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    log.exception("unhandled error")
    note_outcome("error")
    return error_response(500, "INTERNAL_ERROR", "internal error")


class LootboxApi(Api):
    """flask-smorest's Api with our error envelope instead of its own."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        return handle_http_exception(error)


def init_app(app: Flask) -> None:
    app.register_error_handler(e.LootboxError, handle_lootbox_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
