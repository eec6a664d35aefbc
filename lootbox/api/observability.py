"""One JSON log line per request, the request metrics, and ``GET /metrics``.

The access line (logger ``lootbox.access``) is written once per request, whatever
answered it: a view, an error handler (401, 404, 405, 413, 415, 400, business errors,
503) or the catch-all for an unexpected exception. It is written from ``teardown_request``,
which Flask runs exactly once per request even when an ``after_request`` hook failed;
``after_request`` only remembers the final status. Its fields, after the ``time``,
``level``, ``logger`` and ``message`` (``POST /api/s2s/cashout 200``) every line has
(config/logging.py), and never anything else (no headers, no body, so no signature and no
secret can leak into it)::

    {"requestId", "operator", "keyId", "method", "endpoint", "path", "idempotencyKey",
     "outcome", "status", "code", "latencyMs"}

``keyId`` is the API key id (``X-Key-Id``, not a secret) of an authenticated request, so
that a key rotation can check that nobody signs with the old key any more before revoking
it; ``null`` when authentication did not succeed (a caller's unverified header is not
evidence of anything).

``outcome`` says what became of the request (docs/runbook.md, "Reading the access log"):
``fresh`` (executed now, 2xx), ``replay`` (a stored success replayed), ``in_use``,
``mismatch`` (key reused for another request), ``refused`` (the wallet refused),
``unavailable`` (503: wallet outcome unknown, or database unavailable), ``rejected`` (any
other 4xx: authentication, validation, size, route, business rule), ``error`` (500), or
``null`` for a 2xx that did not go through the idempotency guard (reads, probes, /metrics).
The error handlers and the ``@idempotent`` decorator report it through ``note_*`` below.

Lines are INFO, or WARNING for a 5xx. Writing the line and the metrics never breaks a
request: any failure there is logged and swallowed.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from lootbox.api.request_id import current_request_id
from lootbox.container import container
from lootbox.observability.metrics import (
    CONTENT_TYPE,
    record_idempotency_outcome,
    record_request,
    render,
)
from lootbox.observability.scrape import PendingMoneyCollector, RedisUpCollector
from lootbox.signing import HEADER_KEY_ID

access_log = logging.getLogger("lootbox.access")
log = logging.getLogger(__name__)

# Frequent and trivial: counted, but kept out of the latency histogram so that they do not
# drag a latency percentile towards zero.
UNTIMED_ROUTES = frozenset(("/healthz", "/readyz", "/metrics"))
# The route label of a request no route matched (404, 405): one series, not one per path.
UNMATCHED = "unmatched"
# A path is the caller's to choose (404s): enough to recognise it, not a log line flood.
MAX_LOGGED_PATH = 512

_G_KEY = "_lootbox_observed"


@dataclass
class _Observed:
    started: float
    outcome: str | None = None
    code: str | None = None
    idempotency_key: str | None = None
    status: int | None = None
    written: bool = False


def _observed() -> _Observed:
    found = g.get(_G_KEY)
    if found is None:  # a hook ran before ours (it should not): time from here
        found = _Observed(started=time.perf_counter())
        setattr(g, _G_KEY, found)
    return found  # type: ignore[no-any-return]


# --- what the rest of the API layer reports ------------------------------------------------


def note_outcome(outcome: str) -> None:
    """What became of this request (see the module docstring); the last word wins."""
    if has_request_context():
        _observed().outcome = outcome


def note_error_code(code: str) -> None:
    if has_request_context():
        _observed().code = code


def note_idempotency_key(key: str) -> None:
    if has_request_context():
        _observed().idempotency_key = key


# --- the hooks --------------------------------------------------------------------------------


def _start() -> None:
    setattr(g, _G_KEY, _Observed(started=time.perf_counter()))


def _remember_status(response: Response) -> Response:
    # Runs again, with the 500, if a later after_request hook raised: the last status wins.
    try:
        _observed().status = response.status_code
    except Exception:
        log.exception("access log: could not record the status")
    return response


def _write_line(exc: BaseException | None) -> None:
    try:
        observed = _observed()
        if observed.written:
            return
        observed.written = True
        _emit(observed, exc)
    except Exception:
        log.exception("access log: could not write the line for this request")


def _emit(observed: _Observed, exc: BaseException | None) -> None:
    seconds = time.perf_counter() - observed.started
    status = observed.status if observed.status is not None else 500
    outcome = observed.outcome or _default_outcome(status, exc)
    rule = request.url_rule.rule if request.url_rule is not None else None
    operator = g.get("operator")
    fields: dict[str, Any] = {
        "requestId": current_request_id(),
        "operator": getattr(operator, "slug", None),
        "keyId": request.headers.get(HEADER_KEY_ID) if operator is not None else None,
        "method": request.method,
        "endpoint": rule,
        "path": request.path[:MAX_LOGGED_PATH],
        "idempotencyKey": observed.idempotency_key,
        "outcome": outcome,
        "status": status,
        "code": observed.code,
        "latencyMs": round(seconds * 1000, 1),
    }
    # The fields are the record's extra: config/logging.py writes them into its JSON line.
    access_log.log(
        logging.WARNING if status >= 500 else logging.INFO,
        "%s %s %s",
        request.method,
        fields["path"],
        status,
        extra=fields,
    )
    endpoint = rule or UNMATCHED
    record_request(
        endpoint,
        request.method,
        status,
        observed.code,
        seconds,
        timed=rule is not None and rule not in UNTIMED_ROUTES,
    )
    if observed.idempotency_key is not None:
        record_idempotency_outcome(endpoint, outcome or "error")


def _default_outcome(status: int, exc: BaseException | None) -> str | None:
    """For an answer no error handler or guard described (``/readyz``'s 503, a view that
    returned an error status itself, an exception that escaped everything)."""
    if exc is not None or status >= 500:
        return "unavailable" if status == 503 and exc is None else "error"
    if status >= 400:
        return "rejected"
    return None


# --- GET /metrics -------------------------------------------------------------------------------


def metrics_view() -> Response:
    """The Prometheus text exposition. Open like the probes unless ``METRICS_TOKEN`` is
    set; then ``Authorization: Bearer <token>`` is required."""
    box = container()
    token = box.settings.metrics_token
    if token and not _bearer_matches(request.headers.get("Authorization", ""), token):
        raise Unauthorized(
            "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>",
            www_authenticate=WWWAuthenticate("Bearer", {"realm": "metrics"}),
        )
    redis_client = box.redis
    body = render(
        [
            PendingMoneyCollector(box.engine, box.services.clock.now),
            # ``ping`` looked up inside the collector's error handling: a cluster client
            # connects on first use, so even the attribute look-up may fail.
            RedisUpCollector(lambda: redis_client.ping()),
        ]
    )
    return Response(body, status=200, content_type=CONTENT_TYPE)


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def init_app(app: Flask) -> None:
    # First of all before_request hooks, so the latency covers authentication too.
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_remember_status)
    app.teardown_request(_write_line)
    # A plain Flask route, not a flask-smorest one: not part of the S2S API or its
    # OpenAPI document (docs/runbook.md documents it).
    app.add_url_rule("/metrics", endpoint="metrics", view_func=metrics_view, methods=["GET"])
