"""Run Alembic migrations programmatically (``flask --app app db upgrade``, the release
step, and test fixtures all use this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from lootbox.persistence.database import normalize_database_url
from lootbox.persistence.secrets import SecretBox

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str, secret_box: SecretBox | None = None) -> Config:
    config = Config()
    if secret_box is not None:  # else the secrets migration uses LOOTBOX_ENCRYPTION_KEYS
        config.attributes["secret_box"] = secret_box
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option(
        "sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%")
    )
    return config


def upgrade_database(
    database_url: str, revision: str = "head", secret_box: SecretBox | None = None
) -> None:
    url = normalize_database_url(database_url)
    command.upgrade(alembic_config(url, secret_box), revision)
