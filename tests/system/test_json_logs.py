"""The logs in the deployment shape: gunicorn, started as the Procfile starts it, writes
one JSON object per line to stdout, which the platform collects, and nothing to stderr:
its own lines ("Booting worker with pid") as well as the app's access line, the only one
per request (config/logging.py; docs/runbook.md, "Reading the access log")."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.processes import children_of, free_port, kill_pids, stop_process, wait_until
from tests.redis_server import private_redis_server
from tests.system.stack import (
    APP_ENV,
    BIN,
    HOST,
    REPO_ROOT,
    REQUEST_TIMEOUT,
    START_TIMEOUT,
    _base_env,
)

pytestmark = pytest.mark.system

WORKERS = 2
EVERY_LINE = {"time", "level", "logger", "message"}


def one_json_object(raw: str) -> dict[str, Any]:
    line = json.loads(raw)
    assert isinstance(line, dict), raw
    assert set(line) >= EVERY_LINE, raw
    assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0), raw
    return line


def test_gunicorn_and_the_app_write_only_json_lines_to_stdout(
    postgres_database: str, tmp_path: Path
) -> None:
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    request_id = f"sys-logs-{uuid.uuid4().hex}"
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"

    def healthy() -> bool:
        try:
            return requests.get(f"{base_url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            time.sleep(0.1)
            return False

    with private_redis_server() as redis, stdout.open("wb") as out, stderr.open("wb") as err:
        env = _base_env() | APP_ENV
        env |= {
            "DATABASE_URL": postgres_database,
            "REDIS_URL": redis.url,
            "WEB_CONCURRENCY": str(WORKERS),
            "GUNICORN_THREADS": "2",
        }
        # As the Procfile runs it, but listening on 127.0.0.1 only.
        argv = [str(BIN / "gunicorn"), "--config", "config/gunicorn.py", "wsgi:app"]
        gunicorn = subprocess.Popen(
            [*argv, "--bind", f"{HOST}:{port}"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        workers: set[int] = set()
        try:
            wait_until(healthy, START_TIMEOUT, "gunicorn to answer /healthz")
            workers = children_of(gunicorn.pid)
            answer = requests.get(
                f"{base_url}/healthz", headers={"X-Request-Id": request_id}, timeout=REQUEST_TIMEOUT
            )
        finally:
            stop_process(gunicorn)
            kill_pids(workers, "gunicorn")  # only if a worker outlived its master

    assert answer.status_code == 200
    assert gunicorn.returncode == 0
    assert stderr.read_text() == ""
    lines = [one_json_object(raw) for raw in stdout.read_text().splitlines()]
    booting = [
        line
        for line in lines
        if line["logger"] == "gunicorn.error"
        and line["message"].startswith("Booting worker with pid")
    ]
    assert len(booting) == WORKERS, lines
    (access,) = [line for line in lines if line.get("requestId") == request_id]
    assert (access["logger"], access["level"], access["message"]) == (
        "lootbox.access",
        "INFO",
        "GET /healthz 200",
    )
    assert (access["endpoint"], access["status"], access["outcome"]) == ("/healthz", 200, None)
    assert [line for line in lines if line["logger"] == "gunicorn.access"] == []  # the app's only
    assert lines[-1]["message"] == "Shutting down: Master"
