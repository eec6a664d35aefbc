"""The ``@idempotent`` view decorator: fingerprint, key, guard, replay headers."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, current_app, g

from lootbox.api.observability import note_idempotency_key, note_outcome
from lootbox.api.request_id import current_request_id
from lootbox.container import container
from lootbox.domain.records import Operator
from lootbox.idempotency.fingerprint import fingerprint
from lootbox.idempotency.guard import Request

Normalizer = Callable[[dict[str, Any], Operator], dict[str, Any]]
KeyOf = Callable[[dict[str, Any]], str]


def idempotent(endpoint: str, key_of: KeyOf, normalize: Normalizer) -> Callable[..., Any]:
    """Wrap a view returning a JSON ``Response`` so that one key runs it once.

    ``normalize`` gives the request after defaults and without the key: that, with the
    endpoint, is the fingerprint. The stored body is the exact bytes sent the first time.
    """

    def decorator(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def wrapper(args: dict[str, Any]) -> Response:
            operator: Operator = g.operator
            key = key_of(args)
            # Before the guard runs, so that an in-use or mismatch line names the key too.
            note_idempotency_key(key)
            request = Request(
                operator_id=operator.id,
                key=key,
                endpoint=endpoint,
                fingerprint=fingerprint(endpoint, normalize(args, operator)),
                request_id=current_request_id(),
            )

            def execute() -> tuple[int, bytes]:
                response = view(args)
                return response.status_code, response.get_data()

            answer = container().guard.run(request, execute)
            note_outcome(answer.outcome)  # errors are reported by the error handlers
            response = current_app.response_class(
                answer.body, status=answer.status, mimetype="application/json"
            )
            if answer.outcome == "replay":
                response.headers["Idempotent-Replayed"] = "true"
            return response

        return wrapper

    return decorator
