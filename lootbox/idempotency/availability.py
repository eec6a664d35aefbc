"""Whether the Redis fast path works, logged once per change instead of once per request.

While Redis is unreachable every request falls back to the database; a warning on each
would bury the one line that says why. ``FastPathHealth`` logs the cause (and, for a TLS
certificate Redis does not trust, what to change in ``REDIS_URL``) when the fast path
goes away, and one line when it is back.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading

log = logging.getLogger("lootbox.idempotency")

UNTRUSTED_CERTIFICATE_HINT = (
    "the Redis server's TLS certificate is not trusted: add ?ssl_ca_certs=/path/to/ca.pem"
    " to REDIS_URL (verifies it), or ?ssl_cert_reqs=none (encrypts without verifying)"
)
TLS_MISMATCH_HINT = (
    "check that REDIS_URL's scheme matches the server: rediss:// for a TLS port,"
    " redis:// for a plain one"
)

# OpenSSL's "[SSL: CERTIFICATE_VERIFY_FAILED] ... (_ssl.c:1006)": the words in between
# are what an engineer needs.
_SSL_DECORATION = re.compile(r"^\[SSL(?:: [A-Z0-9_]+)?\] |\s*\(_ssl\.c:\d+\)$")


def describe(exc: BaseException) -> str:
    """The root cause of ``exc`` as ``Class: message`` (the innermost exception it was
    raised from, e.g. ``SSLCertVerificationError: certificate verify failed: self-signed
    certificate``), followed by a hint when there is one."""
    root = _root_cause(exc)
    message = root.strerror if isinstance(root, OSError) and root.strerror else str(root)
    if isinstance(root, ssl.SSLError):
        message = _SSL_DECORATION.sub("", message)
    cause = f"{type(root).__name__}: {message}" if message else type(root).__name__
    hint = _hint(root)
    return f"{cause} ({hint})" if hint else cause


def _root_cause(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or exc.__context__
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def _hint(root: BaseException) -> str | None:
    if isinstance(root, ssl.SSLCertVerificationError):
        return UNTRUSTED_CERTIFICATE_HINT
    if isinstance(root, ssl.SSLError):
        return TLS_MISMATCH_HINT
    return None


class FastPathHealth:
    """The state of the fast path as the last call found it; safe to share between threads.

    ``failed`` and ``succeeded`` are called after every Redis call that decides it; only a
    change of state is logged: a WARNING with the cause when the fast path goes away, an
    INFO when it answers again.
    """

    def __init__(
        self,
        logger: logging.Logger = log,
        *,
        down: str = "redis unavailable, idempotency falls back to the database until it answers",
        up: str = "redis answers again, idempotency uses the fast path",
    ) -> None:
        self._log = logger
        self._down = down
        self._up = up
        self._lock = threading.Lock()
        self._cause: str | None = None  # None: available (or not yet tried)

    @property
    def cause(self) -> str | None:
        """Why the fast path is unavailable (see ``describe``), or ``None`` if it is not."""
        return self._cause

    def failed(self, exc: BaseException) -> str:
        """Record that a call failed with ``exc``; its cause, as ``describe`` says it."""
        cause = describe(exc)
        with self._lock:  # held while logging, so a warning and its "back" stay in order
            was_available = self._cause is None
            self._cause = cause
            if was_available:
                self._log.warning("%s: %s", self._down, cause)
        return cause

    def succeeded(self) -> None:
        """Record that a call worked."""
        if self._cause is None:  # the common case: no lock on the request path
            return
        with self._lock:
            if self._cause is not None:
                self._cause = None
                self._log.info(self._up)
