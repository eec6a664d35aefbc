"""What onboarding refuses before anything is written: slugs that could pass for a
separator, cashback outside 0..100 %, rates that are not positive finite numbers, and
plain-http wallets in production (docs/security.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from lootbox.domain.errors import InvalidCatalog, ValidationFailed
from lootbox.services import catalog, onboarding
from tests.fakes import ServiceHarness


def create(harness: ServiceHarness, **changes: Any) -> Any:
    arguments: dict[str, Any] = {
        "slug": "acme",
        "currency": "EUR",
        "wallet_url": "https://wallet.acme.example/rpc",
        "wallet_secret": "acme-wallet-secret",
        "rates": {},
        "cashback_bps": None,
        "refunds_enabled": True,
        "cashback_enabled": True,
        **changes,
    }
    return onboarding.create_operator(harness.uow, harness.clock, **arguments)


@pytest.mark.parametrize(
    "slug", ["opa:cashback", "Acme", "-acme", "acme_casino", "acme casino", "", "a" * 64, "é"]
)
def test_a_slug_outside_the_rule_is_refused(harness: ServiceHarness, slug: str) -> None:
    with pytest.raises(ValidationFailed, match="slug"):
        create(harness, slug=slug)


@pytest.mark.parametrize("slug", ["acme", "0", "acme-casino-2", "a" * 63])
def test_a_slug_inside_the_rule_is_accepted(harness: ServiceHarness, slug: str) -> None:
    operator, _ = create(harness, slug=slug)
    assert operator.slug == slug


@pytest.mark.parametrize("bps", [-1, 10_001, 1_000_000])
def test_cashback_outside_0_to_10000_bps_is_refused(harness: ServiceHarness, bps: int) -> None:
    with pytest.raises(ValidationFailed, match="between 0 and 10000"):
        create(harness, cashback_bps=bps)
    harness.create_operator("acme")
    with pytest.raises(ValidationFailed, match="between 0 and 10000"):
        harness.update_operator("acme", cashback_bps=bps)


def test_cashback_of_the_whole_value_is_the_most_allowed(harness: ServiceHarness) -> None:
    operator, _ = create(harness, cashback_bps=10_000)
    assert operator.cashback_bps == 10_000


@pytest.mark.parametrize("rate", ["0", "-1.2", "Infinity", "NaN", "-Infinity"])
def test_a_rate_that_is_not_positive_and_finite_is_refused(
    harness: ServiceHarness, rate: str
) -> None:
    with pytest.raises(ValidationFailed, match="positive finite"):
        create(harness, rates={"USD": Decimal(rate)})


@pytest.mark.parametrize("bps", [-1, 10_001])
def test_the_catalog_refuses_cashback_outside_0_to_10000_bps(
    harness: ServiceHarness, bps: int
) -> None:
    harness.create_operator("acme")
    prize = {"name": "Coin", "valueMinor": 100, "odds": "1"}
    for box in (
        {"slug": "b", "name": "B", "priceMinor": 100, "cashbackBps": bps, "prizes": [prize]},
        {"slug": "b", "name": "B", "priceMinor": 100, "prizes": [{**prize, "cashbackBps": bps}]},
    ):
        with pytest.raises(
            InvalidCatalog, match=r"cashbackBps must be (between 0 and 10000|an int)"
        ):
            catalog.import_catalog(harness.uow, harness.clock, "acme", {"boxes": [box]})


@pytest.mark.parametrize(
    "url", ["http://wallet.acme.example/rpc", "http://10.0.0.5/rpc", "http://localhost.evil/rpc"]
)
def test_production_refuses_a_plain_http_wallet(harness: ServiceHarness, url: str) -> None:
    with pytest.raises(ValidationFailed, match="must be https"):
        create(harness, wallet_url=url, production=True)
    harness.create_operator("acme")
    with pytest.raises(ValidationFailed, match="must be https"):
        onboarding.update_operator(
            harness.uow, harness.clock, "acme", rates={}, wallet_url=url, production=True
        )


@pytest.mark.parametrize(
    "url",
    [
        "https://wallet.acme.example/rpc",
        "http://127.0.0.1:8081/rpc",
        "http://127.8.9.10/rpc",
        "http://localhost:8081/rpc",
        "http://[::1]:8081/rpc",
    ],
)
def test_production_accepts_https_and_loopback_http(harness: ServiceHarness, url: str) -> None:
    operator, _ = create(harness, wallet_url=url, production=True)
    assert operator.wallet.url == url


def test_development_accepts_a_plain_http_wallet_anywhere(harness: ServiceHarness) -> None:
    operator, _ = create(harness, wallet_url="http://wallet.acme.example/rpc")
    assert operator.wallet.url == "http://wallet.acme.example/rpc"


@pytest.mark.parametrize("url", ["ftp://wallet.example/rpc", "wallet.example/rpc", "http:///rpc"])
def test_a_wallet_url_that_is_not_absolute_http_is_refused(
    harness: ServiceHarness, url: str
) -> None:
    with pytest.raises(ValidationFailed, match="absolute http"):
        create(harness, wallet_url=url)
