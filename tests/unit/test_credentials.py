"""The per-worker cache of API keys and their operators (AUTH_CACHE_SECONDS)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from lootbox.domain.records import Operator, WalletSettings
from lootbox.services.credentials import CredentialCache

ACME = Operator(
    id=1,
    slug="acme",
    currency="EUR",
    wallet=WalletSettings(url="http://127.0.0.1:1/wallet", secret="w"),
    refunds_enabled=True,
    cashback_enabled=True,
    cashback_bps=5000,
)


@dataclass
class KeyTable:
    """The ``api_keys`` table as another process (the admin CLI) changes it."""

    active: dict[str, tuple[str, Operator]] = field(default_factory=dict)
    reads: int = 0

    def get_by_active_key(self, key_id: str) -> tuple[str, Operator] | None:
        self.reads += 1
        return self.active.get(key_id)


class FakeUow:
    def __init__(self, table: KeyTable) -> None:
        self.operators = table

    def __enter__(self) -> FakeUow:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(table: KeyTable, ttl: float = 5.0, **kwargs: Any) -> tuple[CredentialCache, Clock]:
    clock = Clock()
    return CredentialCache(lambda: FakeUow(table), ttl, monotonic=clock, **kwargs), clock  # type: ignore[arg-type, return-value]


def test_a_key_is_read_once_within_the_ttl() -> None:
    table = KeyTable({"lk_a": ("s3cret", ACME)})
    lookup, clock = cache(table)

    first = lookup("lk_a")
    clock.now += 4.9
    again = lookup("lk_a")

    assert first == again == ("s3cret", ACME)
    assert table.reads == 1


def test_a_revocation_by_another_process_takes_effect_once_the_ttl_has_passed() -> None:
    table = KeyTable({"lk_a": ("s3cret", ACME)})
    lookup, clock = cache(table)
    lookup("lk_a")

    del table.active["lk_a"]  # revoked in the database by the CLI
    clock.now += 4.9
    assert lookup("lk_a") is not None  # the documented window
    clock.now += 0.2
    assert lookup("lk_a") is None
    assert lookup("lk_a") is None
    assert table.reads == 3  # a revoked key is read again each time, never remembered


def test_a_policy_change_is_seen_after_the_ttl() -> None:
    table = KeyTable({"lk_a": ("s3cret", ACME)})
    lookup, clock = cache(table)
    lookup("lk_a")

    table.active["lk_a"] = ("s3cret", replace(ACME, cashback_bps=2500))
    clock.now += 5.1

    found = lookup("lk_a")
    assert found is not None and found[1].cashback_bps == 2500


def test_an_unknown_key_is_not_remembered_so_a_new_key_works_at_once() -> None:
    table = KeyTable()
    lookup, _clock = cache(table)
    assert lookup("lk_new") is None

    table.active["lk_new"] = ("fresh", ACME)  # created right after a failed attempt

    assert lookup("lk_new") == ("fresh", ACME)


def test_forget_makes_the_next_request_read_the_database() -> None:
    table = KeyTable({"lk_a": ("s3cret", ACME)})
    lookup, _clock = cache(table)
    lookup("lk_a")

    lookup.forget()
    lookup("lk_a")

    assert table.reads == 2


def test_zero_seconds_reads_every_time() -> None:
    table = KeyTable({"lk_a": ("s3cret", ACME)})
    lookup, _clock = cache(table, ttl=0)

    for _ in range(3):
        assert lookup("lk_a") == ("s3cret", ACME)

    assert table.reads == 3


def test_the_cache_is_bounded_and_drops_the_oldest_key() -> None:
    table = KeyTable({f"lk_{n}": (f"s{n}", ACME) for n in range(4)})
    lookup, _clock = cache(table, max_keys=3)
    for n in range(4):
        lookup(f"lk_{n}")

    lookup("lk_3")
    assert table.reads == 4  # still remembered
    lookup("lk_0")
    assert table.reads == 5  # pushed out by lk_3
