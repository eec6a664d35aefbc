"""Operator onboarding, catalog import and migrations: ``flask operators|catalog|db``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import click
from flask.cli import AppGroup

from lootbox.cli.output import ProgressLine, emit, json_errors
from lootbox.container import container
from lootbox.domain.cashback import MAX_CASHBACK_BPS
from lootbox.domain.money import format_rate, parse_rate
from lootbox.persistence.migrate import upgrade_database
from lootbox.persistence.secrets import secret_box_for
from lootbox.services import catalog, onboarding

operators_cli = AppGroup("operators", help="Create and change operators and their API keys.")
keys_cli = AppGroup("keys", help="Create and revoke an operator's API keys.")
catalog_cli = AppGroup("catalog", help="Import boxes and prizes.")
db_cli = AppGroup("db", help="Database schema migrations.")
secrets_cli = AppGroup("secrets", help="Secrets at rest: key rotation.")
operators_cli.add_command(keys_cli)


def _rates(values: tuple[str, ...]) -> dict[str, Decimal]:
    rates = {}
    for value in values:
        currency, sep, rate = value.partition("=")
        if not sep:
            raise click.BadParameter(f"{value!r}: expected CUR=RATE, e.g. USD=1.0842")
        try:
            rates[currency.strip().upper()] = parse_rate(rate.strip())
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return rates


def _deps() -> tuple[Any, Any]:
    box = container()
    return box.uow_factory, box.services.clock


@operators_cli.command("create")
@click.argument("slug")
@click.option("--currency", required=True, help="Operator (base) currency, ISO 4217.")
@click.option("--wallet-url", required=True)
@click.option("--wallet-secret", required=True, help="Secret we sign wallet calls with.")
@click.option("--rate", "rates", multiple=True, help="CUR=RATE from the operator currency.")
@click.option("--cashback-bps", type=click.IntRange(0, MAX_CASHBACK_BPS), default=None)
@click.option("--refunds/--no-refunds", default=True, show_default=True)
@click.option("--cashback/--no-cashback", default=True, show_default=True)
@json_errors
def create_operator(
    slug: str,
    currency: str,
    wallet_url: str,
    wallet_secret: str,
    rates: tuple[str, ...],
    cashback_bps: int | None,
    refunds: bool,
    cashback: bool,
) -> None:
    """Create an operator and print its first API key."""
    uow_factory, clock = _deps()
    operator, key = onboarding.create_operator(
        uow_factory,
        clock,
        slug=slug,
        currency=currency.upper(),
        wallet_url=wallet_url,
        wallet_secret=wallet_secret,
        rates=_rates(rates),
        cashback_bps=cashback_bps,
        refunds_enabled=refunds,
        cashback_enabled=cashback,
        production=container().settings.production,
    )
    emit(
        {
            "slug": operator.slug,
            "currency": operator.currency,
            "keyId": key.key_id,
            "secret": key.secret,
        }
    )


@operators_cli.command("update")
@click.argument("slug")
@click.option("--rate", "rates", multiple=True, help="CUR=RATE from the operator currency.")
@click.option("--refunds/--no-refunds", default=None)
@click.option("--cashback/--no-cashback", default=None)
@click.option("--cashback-bps", type=click.IntRange(0, MAX_CASHBACK_BPS), default=None)
@click.option("--wallet-url", default=None)
@click.option("--wallet-secret", default=None)
@click.option("--wallet-connect-timeout", type=float, default=None, help="Seconds.")
@click.option("--wallet-read-timeout", type=float, default=None, help="Seconds.")
@json_errors
def update_operator(
    slug: str,
    rates: tuple[str, ...],
    refunds: bool | None,
    cashback: bool | None,
    cashback_bps: int | None,
    wallet_url: str | None,
    wallet_secret: str | None,
    wallet_connect_timeout: float | None,
    wallet_read_timeout: float | None,
) -> None:
    """Change rates, policies and wallet settings; prints the operator as it now is."""
    uow_factory, clock = _deps()
    operator = onboarding.update_operator(
        uow_factory,
        clock,
        slug,
        rates=_rates(rates),
        refunds_enabled=refunds,
        cashback_enabled=cashback,
        cashback_bps=cashback_bps,
        wallet_url=wallet_url,
        wallet_secret=wallet_secret,
        wallet_connect_timeout_seconds=wallet_connect_timeout,
        wallet_read_timeout_seconds=wallet_read_timeout,
        production=container().settings.production,
    )
    container().credentials.forget()
    emit(
        {
            "slug": operator.slug,
            "currency": operator.currency,
            "walletUrl": operator.wallet.url,
            "walletConnectTimeout": operator.wallet.connect_timeout_seconds,
            "walletReadTimeout": operator.wallet.read_timeout_seconds,
            "refunds": operator.refunds_enabled,
            "cashback": operator.cashback_enabled,
            "cashbackBps": operator.cashback_bps,
            "rates": {code: format_rate(rate) for code, rate in sorted(operator.rates.items())},
        }
    )


@keys_cli.command("create")
@click.argument("slug")
@json_errors
def create_key(slug: str) -> None:
    """Add an API key (rotation: add, deploy, then revoke the old one)."""
    uow_factory, clock = _deps()
    key = onboarding.create_api_key(uow_factory, clock, slug)
    emit({"keyId": key.key_id, "secret": key.secret})


@keys_cli.command("revoke")
@click.argument("key_id")
@json_errors
def revoke_key(key_id: str) -> None:
    """Revoke an API key."""
    uow_factory, clock = _deps()
    onboarding.revoke_api_key(uow_factory, clock, key_id)
    container().credentials.forget()
    emit({"keyId": key_id, "revoked": True})


@catalog_cli.command("import")
@click.argument("slug")
@click.argument("file", type=click.File("rb"))
@json_errors
def import_catalog(slug: str, file: Any) -> None:
    """Import boxes from a JSON file; a changed box gets a new version."""
    try:
        # Decimal, not float: odds must sum to exactly 1.
        document = json.loads(file.read(), parse_float=Decimal)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    uow_factory, clock = _deps()
    line = ProgressLine()

    def progress(done: int, total: int) -> None:
        line.say(f"catalog: {done}/{total} boxes published", force=done == total)

    published = catalog.import_catalog(uow_factory, clock, slug, document, progress)
    emit(
        {
            "boxes": [
                {"slug": box.slug, "boxId": box.box_id, "boxVersionId": box.box_version_id}
                for box in published
            ]
        }
    )


@secrets_cli.command("rotate")
@json_errors
def rotate_secrets() -> None:
    """Re-encrypt every stored secret with the first of LOOTBOX_ENCRYPTION_KEYS; then the
    other keys can be dropped."""
    uow_factory, _ = _deps()
    emit({"resealed": onboarding.reseal_secrets(uow_factory)})


@db_cli.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations to DATABASE_URL."""
    settings = container().settings
    upgrade_database(settings.database_url, revision, secret_box_for(settings.encryption_keys))
    emit({"database": "upgraded", "revision": revision})
