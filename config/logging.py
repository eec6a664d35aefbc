"""Logging for every process and every logger: one JSON object per line.

Each line has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``, then the
record's structured fields (its ``extra=``: the access line's, the wallet call's), and
``exc_info`` (the traceback, as one string) when an exception is logged. The formatter is
python-json-logger's; ``LOGGING`` below is the one configuration of it.

gunicorn applies ``LOGGING`` in its master through ``logconfig_dict`` (config/gunicorn.py),
so its own lines and those of the workers it forks go to stdout, which the platform
collects (gunicorn's access line stays off: see ``gunicorn_logger``). ``configure_logging``
(called by ``create_app``) finds the handler there and only sets the level; in any other
process (the ``flask`` CLI, a test) it adds the same handler once. Under the CLI the lines
go to stderr instead: a command's stdout is its answer, one JSON document that scripts read
(lootbox/cli/output.py).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import click
from pythonjsonlogger.json import JsonFormatter

# The name of our handler on the root logger: how a second application of the
# configuration knows there is nothing to add.
HANDLER = "json_lines"


def json_lines(stream: TextIO) -> logging.Handler:
    """A handler writing each record to ``stream`` as one JSON object per line."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    )
    return handler


LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {HANDLER: {"()": json_lines, "stream": "ext://sys.stdout"}},
    "root": {"handlers": [HANDLER]},
    "loggers": {
        # gunicorn's own logger loses the plain-text handler gunicorn gives it and writes
        # through the root's, at the level of gunicorn's ``loglevel``.
        "gunicorn.error": {"handlers": [], "propagate": True},
    },
}


def gunicorn_logger() -> type:
    """gunicorn's ``logger_class``: its logger without the access line. The app writes
    its own, richer one (logger lootbox.access); and once ``logconfig_dict`` is set,
    gunicorn builds its line's fields for every request (about 17 µs) even when no handler
    would write them. gunicorn is imported here, in its own process: not every machine
    that runs the app has it."""
    from gunicorn.glogging import Logger

    class WithoutAccessLine(Logger):
        def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
            pass

    return WithoutAccessLine


def configure_logging(level: str) -> None:
    """Send every logger's records through ``LOGGING``'s handler, at ``level``.

    Idempotent: the handler is added to the root logger only if it is not there yet
    (gunicorn put it there before forking this worker, or an earlier app of this process
    did). Handlers others attached (a test's log capture) are left in place, which
    ``logging.config.dictConfig`` would not do: it closes every existing handler.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(handler.name == HANDLER for handler in root.handlers):
        return
    handler = json_lines(sys.stderr if _under_the_cli() else sys.stdout)
    handler.name = HANDLER
    root.addHandler(handler)


def _under_the_cli() -> bool:
    """Is this app being built by a ``flask`` command (rather than gunicorn or a test)?"""
    return click.get_current_context(silent=True) is not None
