"""The ``flask --app app …`` commands, one module per audience."""

from __future__ import annotations

from flask import Flask

from lootbox.cli.admin import catalog_cli, db_cli, operators_cli, secrets_cli
from lootbox.cli.oncall import idem_cli, ops_cli
from lootbox.cli.reconcile import reconcile_command


def init_app(app: Flask) -> None:
    for command in (
        operators_cli,
        catalog_cli,
        db_cli,
        secrets_cli,
        reconcile_command,
        ops_cli,
        idem_cli,
    ):
        app.cli.add_command(command)
