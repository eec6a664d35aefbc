"""The composition root: ``create_app`` builds and wires everything; nothing else does.

Nothing connects at import time. Engines and Redis clients connect lazily on first use.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.sessions import SessionInterface, SessionMixin

from config.logging import configure_logging
from config.settings import Settings
from lootbox import cli
from lootbox.api import docs, errors, observability, openapi, request_id
from lootbox.api.auth import Authenticator
from lootbox.api.catalog import blp as catalog_blueprint
from lootbox.api.fairness import blp as fairness_blueprint
from lootbox.api.fairness import seeds_blp as seeds_blueprint
from lootbox.api.json_provider import ExactDecimalJSONProvider
from lootbox.api.probes import blp as probes_blueprint
from lootbox.api.reads import blp as reads_blueprint
from lootbox.api.s2s import blp as s2s_blueprint
from lootbox.container import Container
from lootbox.idempotency.guard import IdempotencyGuard
from lootbox.idempotency.redis_clients import make_redis_client
from lootbox.idempotency.redis_store import RedisIdempotencyStore
from lootbox.persistence.database import SqlAlchemyUnitOfWork, make_engine, make_session_factory
from lootbox.persistence.secrets import secret_box_for
from lootbox.ports import Wallet
from lootbox.readiness import ReadinessProbe
from lootbox.services.context import ServiceContext, SystemClock
from lootbox.services.credentials import CredentialCache
from lootbox.wallet.http import HttpWallet

log = logging.getLogger("lootbox")


class NoSessions(SessionInterface):
    """A server-to-server API has no browser sessions: Flask's default would look for a
    session cookie and set up its signer on every request (about 5 % of a replay's CPU,
    docs/benchmarks.md). ``flask.session`` stays usable as an empty, unsaved mapping."""

    def open_session(self, app: Flask, request: Any) -> SessionMixin | None:
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: SessionMixin, response: Any) -> None:
        pass


def create_app(
    config: Settings | Mapping[str, Any] | None = None,
    *,
    wallet: Wallet | None = None,
    redis_client: Any = None,
) -> Flask:
    """Build the app. ``config`` is a ``Settings``, or overrides of ``Settings.from_env()``
    field names (``{"database_url": ...}``); ``wallet`` and ``redis_client`` replace the
    real adapters in tests."""
    settings = config if isinstance(config, Settings) else Settings.from_env(**dict(config or {}))
    configure_logging(settings.log_level)  # JSON lines, once per process

    app = Flask(__name__)
    app.session_interface = NoSessions()
    app.json = ExactDecimalJSONProvider(app)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        API_TITLE="LootBox S2S API",
        API_VERSION="1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
    )

    engine = make_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        prepared_statements=settings.database_prepared_statements,
        secret_box=secret_box_for(settings.encryption_keys),
    )
    session_factory = make_session_factory(engine)

    def uow_factory() -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(session_factory)

    if redis_client is None:
        redis_client = make_redis_client(settings.redis_url)
    clock = SystemClock()
    credentials = CredentialCache(uow_factory, settings.auth_cache_seconds)
    services = ServiceContext(
        uow_factory=uow_factory,
        wallet=wallet
        or HttpWallet(
            connect_timeout_seconds=settings.wallet_connect_timeout_seconds,
            read_timeout_seconds=settings.wallet_read_timeout_seconds,
        ),
        clock=clock,
        movement_lease_seconds=settings.movement_lease_seconds,
        idempotency_lease_seconds=settings.idempotency_lease_seconds,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        wallet_connect_timeout_seconds=settings.wallet_connect_timeout_seconds,
        wallet_read_timeout_seconds=settings.wallet_read_timeout_seconds,
    )
    app.extensions["lootbox"] = Container(
        settings=settings,
        engine=engine,
        uow_factory=uow_factory,
        services=services,
        guard=IdempotencyGuard(
            RedisIdempotencyStore(redis_client, prefix=settings.redis_key_prefix),
            uow_factory,
            clock,
            wait_seconds=settings.idempotency_wait_seconds,
            lease_seconds=settings.idempotency_lease_seconds,
            ttl_seconds=settings.idempotency_ttl_seconds,
        ),
        credentials=credentials,
        authenticator=Authenticator(credentials, settings.signature_max_skew_seconds),
        redis=redis_client,
        readiness=ReadinessProbe(engine, redis_client),
    )

    docs.init_app(app)  # /docs, Swagger UI from bundled assets: before the Api reads config
    api = errors.LootboxApi(app, spec_kwargs=openapi.spec_kwargs())
    api.register_blueprint(s2s_blueprint)
    api.register_blueprint(reads_blueprint)
    api.register_blueprint(catalog_blueprint)
    api.register_blueprint(fairness_blueprint)
    api.register_blueprint(seeds_blueprint)
    api.register_blueprint(probes_blueprint)
    errors.init_app(app)
    observability.init_app(app)
    request_id.init_app(app)
    cli.init_app(app)
    return app
