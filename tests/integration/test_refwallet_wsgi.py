"""The reference wallet under gunicorn (``lootbox.refwallet.wsgi``), configured by the
environment as ``python -m lootbox.refwallet`` is: the same wallet, on kept-alive
connections."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from lootbox.refwallet.wsgi import create_app
from lootbox.signing import signed_headers
from tests.processes import REPO_ROOT, free_port, stop_process, tail, wait_until

SECRET = "wallet-secret-1"


def test_the_environment_names_the_operators_balance_and_path() -> None:
    app = create_app(
        {
            "REFWALLET_OPERATORS": "casino-a=s1,casino-b=s2",
            "REFWALLET_STARTING_BALANCE": "500",
            "REFWALLET_PATH": "/rpc",
        }
    )
    client = app.test_client()

    assert client.get("/_admin/operators").get_json()["operators"] == ["casino-a", "casino-b"]
    body = json.dumps({"type": "wallet.balance", "playerExternalId": "p", "currency": "EUR"})
    answer = client.post(
        "/rpc",
        data=body,
        headers=signed_headers("s2", int(time.time()), "POST", "/rpc", body.encode()),
        content_type="application/json",
    )
    assert answer.get_json()["balanceAfterMinor"] == 500


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({}, "REFWALLET_SECRETS or REFWALLET_OPERATORS"),
        ({"REFWALLET_SECRETS": "s", "REFWALLET_STARTING_BALANCE": "-1"}, "STARTING_BALANCE"),
        ({"REFWALLET_SECRETS": "s", "REFWALLET_PATH": "/_admin/x"}, "path"),
    ],
)
def test_a_wallet_the_environment_does_not_describe_is_refused(
    environ: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        create_app(environ)


@pytest.fixture
def gunicorn_wallet(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "wallet.log"
    argv = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "1"]
    argv += ["--threads", "4", "--keep-alive", "30", "--bind", f"127.0.0.1:{port}"]
    argv += ["lootbox.refwallet.wsgi:create_app()"]
    env = {"PATH": "/usr/bin:/bin", "REFWALLET_SECRETS": SECRET, "PYTHONPATH": str(REPO_ROOT)}
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            try:
                return requests.get(f"{url}/_admin/stats", timeout=1).status_code == 200
            except requests.ConnectionError:
                assert proc.poll() is None, tail(log)
                return False

        wait_until(answers, timeout=30, what="gunicorn to serve the wallet")
        yield url
    finally:
        stop_process(proc)


def test_under_gunicorn_a_credit_is_applied_once_on_a_kept_alive_connection(
    gunicorn_wallet: str,
) -> None:
    credit = {
        "type": "wallet.credit",
        "idempotencyKey": "cashback:inventory:1",
        "playerExternalId": "p1",
        "amountMinor": 350,
        "currency": "EUR",
        "reason": "cashback",
        "inventoryItemId": 1,
    }
    body = json.dumps(credit).encode()
    session = requests.Session()
    answers = []
    for delay in (0, 1.1):  # the second call signed in a later second: not a replayed signature
        time.sleep(delay)
        headers = signed_headers(SECRET, int(time.time()), "POST", "/wallet", body)
        headers |= {"Idempotency-Key": "cashback:inventory:1", "Content-Type": "application/json"}
        answer = session.post(f"{gunicorn_wallet}/wallet", data=body, headers=headers, timeout=5)
        answers.append((answer.status_code, answer.json(), answer.headers.get("Connection")))

    assert [status for status, _, _ in answers] == [200, 200]
    assert answers[0][1] == answers[1][1] and answers[0][1]["balanceAfterMinor"] == 100_350
    assert all(connection != "close" for _, _, connection in answers)
    stats = requests.get(f"{gunicorn_wallet}/_admin/stats", timeout=5).json()
    assert (stats["applied"], stats["replayed"]) == (1, 1)
