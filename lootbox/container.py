"""The wired objects one app instance uses; built by ``app.create_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import Engine

from config.settings import Settings
from lootbox.idempotency.guard import IdempotencyGuard
from lootbox.ports import UnitOfWork
from lootbox.readiness import ReadinessProbe
from lootbox.services.context import ServiceContext
from lootbox.services.credentials import CredentialCache

if TYPE_CHECKING:  # the API layer reaches wired objects through this module
    from lootbox.api.auth import Authenticator


@dataclass
class Container:
    settings: Settings
    engine: Engine
    uow_factory: Callable[[], UnitOfWork]
    services: ServiceContext
    guard: IdempotencyGuard
    credentials: CredentialCache
    authenticator: Authenticator
    redis: Any
    readiness: ReadinessProbe


def container() -> Container:
    found: Container = current_app.extensions["lootbox"]
    return found
