"""The SDK's backoff: capped exponential, full jitter, Retry-After as a floor."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lootbox.client import RetryPolicy


def test_the_ceiling_doubles_from_the_base_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=2.0)

    assert [policy.ceiling(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_full_jitter_scales_the_ceiling_by_the_random_draw() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=10.0)

    assert policy.delay(3, 0.0) == 0.0
    assert policy.delay(3, 0.5) == 1.0
    assert policy.delay(3, 0.999) == pytest.approx(1.998)


def test_retry_after_is_a_floor_not_a_replacement() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)

    assert policy.delay(1, 0.0, retry_after=1.0) == 1.0  # jitter below: the floor wins
    assert policy.delay(4, 0.5, retry_after=1.0) == 4.0  # jitter above: the jitter wins
    assert policy.delay(1, 0.0, retry_after=30.0) == 30.0  # even above the cap


def test_huge_attempt_counts_do_not_overflow() -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=5.0)

    assert policy.ceiling(10_000) == 5.0


@given(
    failures=st.integers(min_value=1, max_value=500),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    base=st.floats(min_value=0.0, max_value=10.0),
    cap=st.floats(min_value=0.0, max_value=60.0),
)
def test_a_delay_is_never_negative_nor_above_the_cap(
    failures: int, draw: float, base: float, cap: float
) -> None:
    policy = RetryPolicy(base_delay=base, max_delay=cap)

    delay = policy.delay(failures, draw)

    assert 0.0 <= delay <= cap
    assert delay <= base * 2 ** min(failures - 1, 62) + 1e-9


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1.0}, {"max_delay": -0.1}, {"deadline": 0}],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_no_deadline_is_allowed() -> None:
    assert RetryPolicy(deadline=None).deadline is None
