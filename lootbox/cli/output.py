"""How every command answers: one JSON document on stdout, so scripts (and our own
acceptance checks) can read it; errors as JSON on stderr with exit code 1; progress of long
work as plain lines on stderr, where it never mixes with the answer."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from lootbox.domain.errors import LootboxError


def emit(document: dict[str, Any]) -> None:
    click.echo(json.dumps(document))


def fail(code: str, message: str) -> None:
    click.echo(json.dumps({"error": {"code": code, "message": message}}), err=True)
    sys.exit(1)


def json_errors(command: Callable[..., None]) -> Callable[..., None]:
    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except LootboxError as exc:
            fail(exc.code, exc.message)

    return wrapper


class ProgressLine:
    """Prints ``say()`` lines to stderr at most every ``every_seconds`` (and always the
    last one, via ``done``), so a long pass shows it is moving without flooding a log."""

    def __init__(self, every_seconds: float = 1.0) -> None:
        self._every = every_seconds
        self._last = time.monotonic()

    def say(self, line: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self._every:
            self._last = now
            click.echo(line, err=True)
