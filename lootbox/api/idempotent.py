"""The ``@idempotent`` view decorator: key, fingerprint, the guard, replay headers."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Protocol, TypeVar, cast

from flask import Response, current_app, g
from marshmallow import Schema

from lootbox.api.observability import note_idempotency_key, note_outcome
from lootbox.api.request_id import current_request_id
from lootbox.container import container
from lootbox.domain.records import Operator
from lootbox.idempotency.fingerprint import fingerprint
from lootbox.ports import Answer, KeyedRequest


class KeyedCommand(Protocol):
    """A money command: its request schema loaded it, key included."""

    @property
    def idempotency_key(self) -> str: ...


C = TypeVar("C", bound=KeyedCommand)


def idempotent(
    endpoint: str, normalize: Callable[[C, Operator], dict[str, Any]]
) -> Callable[[Callable[[C, KeyedRequest], Answer]], Callable[[C], Response]]:
    """Run a money view once per key: the view gets its command and its ``KeyedRequest``
    (the use case claims it in the database and stores the answer) and returns the
    ``Answer``.

    ``normalize`` gives the request after defaults and without the key: that, with the
    endpoint, is the fingerprint. A replay is the exact bytes sent the first time.
    """

    def decorator(view: Callable[[C, KeyedRequest], Answer]) -> Callable[[C], Response]:
        @wraps(view)
        def wrapper(command: C) -> Response:
            operator: Operator = g.operator
            # Before the guard runs, so that an in-use or mismatch line names the key too.
            note_idempotency_key(command.idempotency_key)
            request = KeyedRequest(
                operator_id=operator.id,
                key=command.idempotency_key,
                endpoint=endpoint,
                fingerprint=fingerprint(endpoint, normalize(command, operator)),
                request_id=current_request_id(),
            )
            answer = container().guard.run(request, lambda: view(command, request))
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
