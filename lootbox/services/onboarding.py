"""Operator onboarding: operators, their API keys, rates and policies."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from lootbox.currencies import is_known
from lootbox.domain.errors import ApiKeyNotFound, OperatorExists, OperatorNotFound, ValidationFailed
from lootbox.domain.records import Operator
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


def _check_bps(bps: int | None) -> None:
    if bps is not None and bps < 0:
        raise ValidationFailed("cashback bps must be >= 0")


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
) -> tuple[Operator, NewApiKey]:
    """Create an operator and its first API key, in one transaction."""
    _check_currency(currency)
    for code in rates:
        _check_currency(code)
    _check_bps(cashback_bps)
    if not wallet_url.startswith(("http://", "https://")):
        raise ValidationFailed("wallet URL must be http(s)")
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
) -> Operator:
    """Change what is given and nothing else. Wallet timeouts are per operator overrides of
    the service defaults (a slow wallet should not need a global change)."""
    for code in rates:
        _check_currency(code)
    _check_bps(cashback_bps)
    if wallet_url is not None and not wallet_url.startswith(("http://", "https://")):
        raise ValidationFailed("wallet URL must be http(s)")
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
