"""Secrets at rest: API key secrets and operators' wallet secrets are Fernet tokens in the
database, never plaintext (docs/security.md).

``LOOTBOX_ENCRYPTION_KEYS`` is a comma-separated list of Fernet keys: the first encrypts,
every one decrypts, so a new key is put first, deployed, and the rows re-encrypted
(``flask --app app secrets rotate``) before the old key is dropped. Production must set
it; in development a key is generated once into ``instance/encryption-keys``.

The columns are ``EncryptedText``: the engine's ``SecretBox`` seals a value on its way in
and opens it on its way out, so no repository, migration or test can write a secret in
plaintext by forgetting a call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

DEV_KEY_FILE = Path(__file__).resolve().parents[2] / "instance" / "encryption-keys"


class SecretUnreadable(RuntimeError):
    """A stored secret that none of the configured keys opens."""


class SecretBox:
    """Encrypts and decrypts secrets with a list of Fernet keys; the first one encrypts."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("LOOTBOX_ENCRYPTION_KEYS holds no key")
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode("ascii")) for key in keys])
        except (ValueError, UnicodeError) as exc:
            raise ValueError(
                "LOOTBOX_ENCRYPTION_KEYS must be comma-separated Fernet keys (32 url-safe"
                " base64-encoded bytes each, e.g. from Fernet.generate_key())"
            ) from exc

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        return cls([key for key in value.split(",") if key.strip()])

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretUnreadable(
                "a stored secret opens with none of LOOTBOX_ENCRYPTION_KEYS: was its key"
                " removed before `flask --app app secrets rotate` ran?"
            ) from exc

    def opens(self, token: str) -> bool:
        """Whether ``token`` is a secret sealed with one of these keys."""
        try:
            self.open(token)
        except SecretUnreadable:
            return False
        return True


def development_keys(path: Path = DEV_KEY_FILE) -> str:
    """The development key, generated on first use and kept (mode 0600) beside the other
    development state, so secrets written yesterday still open today. Two processes
    starting at once (the server and a CLI) agree on one key: it is written aside and
    linked into place, which fails for the second."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(Fernet.generate_key().decode("ascii") + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process won; use its key
        finally:
            draft.unlink()
    return path.read_text().strip()


def secret_box_for(configured_keys: str) -> SecretBox:
    """The box for ``LOOTBOX_ENCRYPTION_KEYS``, or the development key when it is empty
    (``Settings`` refuses an empty one in production)."""
    return SecretBox.from_setting(configured_keys or development_keys())


def environment_secret_box() -> SecretBox:
    """The box of ``LOOTBOX_ENCRYPTION_KEYS`` as the process environment has it: for
    engines built outside ``create_app`` (tests, tools), which reads it through Settings."""
    return secret_box_for(os.environ.get("LOOTBOX_ENCRYPTION_KEYS", ""))


def attach_secret_box(engine: Engine, box: SecretBox) -> None:
    """Make ``box`` the one that ``EncryptedText`` columns use on ``engine``."""
    engine.dialect.lootbox_secret_box = box  # type: ignore[attr-defined]


def _box_of(dialect: Dialect) -> SecretBox:
    box = getattr(dialect, "lootbox_secret_box", None)
    if box is None:
        raise RuntimeError("this engine has no SecretBox: build it with make_engine()")
    assert isinstance(box, SecretBox)
    return box


class EncryptedText(TypeDecorator[str]):
    """A secret column: sealed by the engine's ``SecretBox`` when written, opened when
    read. Fernet tokens differ on every write, so the column is never compared or indexed."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else _box_of(dialect).seal(str(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else _box_of(dialect).open(str(value))
