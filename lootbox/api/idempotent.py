"""The ``@idempotent`` view decorator: key, fingerprint, the guard, replay headers."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from flask import Response, current_app, g
from marshmallow import Schema

from lootbox.api.observability import note_idempotency_key, note_outcome
from lootbox.api.request_id import current_request_id
from lootbox.container import container
from lootbox.domain.records import Operator
from lootbox.idempotency.fingerprint import fingerprint
from lootbox.ports import Answer, KeyedRequest

Normalizer = Callable[[dict[str, Any], Operator], dict[str, Any]]
KeyOf = Callable[[dict[str, Any]], str]
MoneyView = Callable[[dict[str, Any], KeyedRequest], Answer]


def idempotent(
    endpoint: str, key_of: KeyOf, normalize: Normalizer
) -> Callable[[MoneyView], Callable[[dict[str, Any]], Response]]:
    """Run a money view once per key: the view gets its ``KeyedRequest`` (the use case
    claims it in the database and stores the answer) and returns the ``Answer``.

    ``normalize`` gives the request after defaults and without the key: that, with the
    endpoint, is the fingerprint. A replay is the exact bytes sent the first time.
    """

    def decorator(view: MoneyView) -> Callable[[dict[str, Any]], Response]:
        @wraps(view)
        def wrapper(args: dict[str, Any]) -> Response:
            operator: Operator = g.operator
            key = key_of(args)
            # Before the guard runs, so that an in-use or mismatch line names the key too.
            note_idempotency_key(key)
            request = KeyedRequest(
                operator_id=operator.id,
                key=key,
                endpoint=endpoint,
                fingerprint=fingerprint(endpoint, normalize(args, operator)),
                request_id=current_request_id(),
            )
            answer = container().guard.run(request, lambda: view(args, request))
            note_outcome(answer.outcome)  # errors are reported by the error handlers
            response = current_app.response_class(
                answer.body, status=answer.status, mimetype="application/json"
            )
            if answer.outcome == "replay":
                response.headers["Idempotent-Replayed"] = "true"
            return response

        return wrapper

    return decorator


def render_json(schema: Schema, data: Any) -> str:
    """The body Flask would send for ``data`` dumped with ``schema``: the bytes stored as
    the request's answer, and sent, and replayed."""
    response = cast(Response, current_app.json.response(schema.dump(data)))
    return response.get_data(as_text=True)
