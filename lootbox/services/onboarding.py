"""Operator onboarding: operators, their API keys, rates and policies."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

from lootbox.currencies import is_known
from lootbox.domain.cashback import MAX_CASHBACK_BPS, is_cashback_bps
from lootbox.domain.errors import ApiKeyNotFound, OperatorExists, OperatorNotFound, ValidationFailed
from lootbox.domain.records import OPERATOR_SLUG, Operator, is_loopback_host
from lootbox.ports import Clock, UnitOfWork


@dataclass(frozen=True)
class NewApiKey:
    key_id: str
    secret: str


def new_api_key() -> NewApiKey:
    return NewApiKey(key_id=f"lk_{secrets.token_hex(8)}", secret=secrets.token_urlsafe(32))


def _check_currency(currency: str) -> None:
    if not is_known(currency):
        raise ValidationFailed(f"{currency!r} is not an ISO 4217 currency with minor units")


SLUG = re.compile(OPERATOR_SLUG)


def _check_slug(slug: str) -> None:
    if not SLUG.fullmatch(slug):
        raise ValidationFailed(
            f"operator slug {slug!r} must be 1 to 63 lowercase letters, digits and '-',"
            " starting with a letter or digit"
        )


def _check_bps(bps: int | None) -> None:
    if bps is not None and not is_cashback_bps(bps):
        raise ValidationFailed(f"cashback bps must be between 0 and {MAX_CASHBACK_BPS}")


def _check_rates(rates: Mapping[str, Decimal]) -> None:
    for code, rate in rates.items():
        _check_currency(code)
        if not (rate.is_finite() and rate > 0):
            raise ValidationFailed(f"rate {code}={rate} must be a positive finite number")


def _check_wallet_url(url: str, *, production: bool) -> None:
    """An absolute http(s) URL; in production https, or http only to this host, where
    nothing crosses a network (a sidecar wallet)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed(f"wallet URL {url!r} must be an absolute http(s) URL")
    if production and parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValidationFailed(
            f"wallet URL {url!r}: in production the wallet must be https:// (wallet calls"
            " carry money and a signature); plain http is allowed only to a loopback"
            " address (127.0.0.0/8, localhost, ::1)"
        )


def create_operator(
    uow_factory: Callable[[], UnitOfWork],
    clock: Clock,
    *,
    slug: str,
    currency: str,
    wallet_url: str,
    wallet_secret: str,
    rates: Mapping[str, Decimal],
    cashback_bps: int | None,
    refunds_enabled: bool,
    cashback_enabled: bool,
    production: bool = False,
) -> tuple[Operator, NewApiKey]:
    """Create an operator and its first API key, in one transaction. ``production``
    holds the wallet URL to https (``_check_wallet_url``)."""
    _check_slug(slug)
    _check_currency(currency)
    _check_rates(rates)
    _check_bps(cashback_bps)
    _check_wallet_url(wallet_url, production=production)
    with uow_factory() as uow:
        now = clock.now()
        operator = uow.operators.add(
            slug=slug,
            currency=currency,
            wallet_url=wallet_url,
            wallet_secret=wallet_secret,
            refunds_enabled=refunds_enabled,
            cashback_enabled=cashback_enabled,
            cashback_bps=cashback_bps,
            now=now,
        )
        if operator is None:
            raise OperatorExists(f"operator {slug!r} already exists")
        for code, rate in rates.items():
            uow.operators.set_rate(operator.id, code, rate, now)
        key = new_api_key()
        uow.operators.add_api_key(operator.id, key.key_id, key.secret, now)
        uow.commit()
        created = uow.operators.get(operator.id)
    assert created is not None
    return created, key


def create_api_key(uow_factory: Callable[[], UnitOfWork], clock: Clock, slug: str) -> NewApiKey:
    with uow_factory() as uow:
        operator = uow.operators.get_by_slug(slug)
        if operator is None:
            raise OperatorNotFound(f"no operator {slug!r}")
        key = new_api_key()
        uow.operators.add_api_key(operator.id, key.key_id, key.secret, clock.now())
        uow.commit()
        return key


def revoke_api_key(uow_factory: Callable[[], UnitOfWork], clock: Clock, key_id: str) -> None:
    """Revoke a key; requests signed with it fail within ``AUTH_CACHE_SECONDS`` on every
    worker (``lootbox.services.credentials``)."""
    with uow_factory() as uow:
        if uow.operators.get_api_key(key_id) is None:
            raise ApiKeyNotFound(f"no api key {key_id!r}")
        uow.operators.revoke_api_key(key_id, clock.now())
        uow.commit()


def reseal_secrets(uow_factory: Callable[[], UnitOfWork]) -> int:
    """Re-encrypt every stored secret with the first encryption key, in one transaction
    (key rotation: docs/security.md)."""
    with uow_factory() as uow:
        count: int = uow.operators.reseal_secrets()
        uow.commit()
    return count


def update_operator(
    uow_factory: Callable[[], UnitOfWork],
    clock: Clock,
    slug: str,
    *,
    rates: Mapping[str, Decimal],
    refunds_enabled: bool | None = None,
    cashback_enabled: bool | None = None,
    cashback_bps: int | None = None,
    wallet_url: str | None = None,
    wallet_secret: str | None = None,
    wallet_connect_timeout_seconds: float | None = None,
    wallet_read_timeout_seconds: float | None = None,
    production: bool = False,
) -> Operator:
    """Change what is given and nothing else. Wallet timeouts are per operator overrides of
    the service defaults (a slow wallet should not need a global change)."""
    _check_rates(rates)
    _check_bps(cashback_bps)
    if wallet_url is not None:
        _check_wallet_url(wallet_url, production=production)
    for timeout in (wallet_connect_timeout_seconds, wallet_read_timeout_seconds):
        if timeout is not None and not 0 < timeout <= 60:
            raise ValidationFailed("wallet timeouts must be between 0 and 60 seconds")
    with uow_factory() as uow:
        operator = uow.operators.get_by_slug(slug)
        if operator is None:
            raise OperatorNotFound(f"no operator {slug!r}")
        changes = {
            name: value
            for name, value in (
                ("refunds_enabled", refunds_enabled),
                ("cashback_enabled", cashback_enabled),
                ("cashback_bps", cashback_bps),
                ("wallet_url", wallet_url),
                ("wallet_secret", wallet_secret),
                ("wallet_connect_timeout_ms", _ms(wallet_connect_timeout_seconds)),
                ("wallet_read_timeout_ms", _ms(wallet_read_timeout_seconds)),
            )
            if value is not None
        }
        uow.operators.update_policies(operator.id, **changes)
        now = clock.now()
        for code, rate in rates.items():
            uow.operators.set_rate(operator.id, code, rate, now)
        uow.commit()
        updated = uow.operators.get(operator.id)
    assert updated is not None
    return updated


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)
