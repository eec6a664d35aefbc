"""Run Alembic migrations programmatically (``flask --app app db upgrade``, the release
step, and test fixtures all use this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from lootbox.persistence.database import normalize_database_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option(
        "sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%")
    )
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    url = normalize_database_url(database_url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)
