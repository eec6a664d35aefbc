"""The reference wallet as a WSGI application configured by the environment, for a
production server (the benchmark serves it so, to cost the machine what a real wallet
would)::

    REFWALLET_SECRETS=s3cret gunicorn --worker-class gthread --workers 1 --threads 64 \\
        --keep-alive 30 --bind 127.0.0.1:8081 'lootbox.refwallet.wsgi:create_app()'

The variables are those of ``python -m lootbox.refwallet``: ``REFWALLET_SECRETS`` and
``REFWALLET_OPERATORS`` (at least one), ``REFWALLET_STARTING_BALANCE``,
``REFWALLET_PATH`` and ``REFWALLET_ADMIN_TOKEN``. One worker process only: the ledger,
the signatures seen and the faults live in its memory, so a second worker would be a
second wallet. gunicorn hands the app its client socket (``gunicorn.socket``), so the
``apply_then_drop`` and ``reset`` faults hang up as under werkzeug's server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask

from lootbox.refwallet.__main__ import operators_from
from lootbox.refwallet.app import create_wallet_app

DEFAULT_STARTING_BALANCE = 100_000


def _list(environ: Mapping[str, str], name: str) -> list[str]:
    return [item.strip() for item in environ.get(name, "").split(",") if item.strip()]


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """The wallet the environment describes (``os.environ`` by default); ``ValueError``
    says what is missing or malformed."""
    env = os.environ if environ is None else environ
    operators = operators_from(_list(env, "REFWALLET_OPERATORS"), _list(env, "REFWALLET_SECRETS"))
    if not operators:
        raise ValueError("REFWALLET_SECRETS or REFWALLET_OPERATORS must name a secret")
    balance = env.get("REFWALLET_STARTING_BALANCE") or str(DEFAULT_STARTING_BALANCE)
    if not balance.isdigit():
        raise ValueError("REFWALLET_STARTING_BALANCE must be an integer >= 0")
    return create_wallet_app(
        operators,
        int(balance),
        env.get("REFWALLET_PATH") or "/wallet",
        admin_token=env.get("REFWALLET_ADMIN_TOKEN") or None,
    )
