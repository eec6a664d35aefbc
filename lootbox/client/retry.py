"""When and how long the client waits before trying a call again."""

from __future__ import annotations

from dataclasses import dataclass

# 2**62 × any sane base is already far above any cap; bigger exponents only overflow floats.
_MAX_EXPONENT = 62


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, bounded by attempts and by time.

    After the n-th failed attempt (n = 1, 2, ...) the client sleeps
    ``uniform(0, min(max_delay, base_delay × 2^(n-1)))`` seconds, but at least the answer's
    ``Retry-After``. It gives up after ``max_attempts`` attempts, or when the next attempt
    could not start before ``deadline`` seconds have passed since the call began
    (``None``: no overall deadline). ``RetryPolicy(max_attempts=1)`` never retries.

    Only answers that cannot have been final are retried: 409 ``IDEMPOTENCY_KEY_IN_USE``,
    502/503/504 (``WALLET_UNAVAILABLE``, ``SERVICE_UNAVAILABLE``) and network errors
    (connection refused or reset, timeouts). Every attempt carries the same idempotency
    key and body bytes, so a retry never moves money twice.
    """

    max_attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 8.0
    deadline: float | None = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("deadline must be positive (or None)")

    def ceiling(self, failures: int) -> float:
        """The largest backoff after ``failures`` failed attempts (before jitter)."""
        exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
        return float(min(self.max_delay, self.base_delay * 2**exponent))

    def delay(self, failures: int, unit_random: float, retry_after: float | None = None) -> float:
        """Seconds to sleep after ``failures`` failed attempts. ``unit_random`` is a draw
        from [0, 1) (full jitter); ``retry_after`` the server's ``Retry-After``, a floor."""
        jittered = unit_random * self.ceiling(failures)
        if retry_after is not None:
            return max(jittered, retry_after)
        return jittered
