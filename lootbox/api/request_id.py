"""``X-Request-Id`` on every response: the caller's, or a new one."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

VALID_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}\Z")


def current_request_id() -> str:
    if "request_id" not in g:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    return str(g.request_id)


def init_app(app: Flask) -> None:
    @app.after_request
    def _add_request_id(response: Response) -> Response:
        response.headers["X-Request-Id"] = current_request_id()
        return response
