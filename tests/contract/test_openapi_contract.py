"""The live service against its own OpenAPI document, with schemathesis.

A real deployment on 127.0.0.1 (``tests.system.stack``: gunicorn workers, PostgreSQL,
a private redis-server, the reference wallet as its own process, an operator and its
catalog onboarded through the CLI) is driven by ``st run`` over ``/openapi.json`` with
``tests/contract/schemathesis.toml``: every operation with valid and invalid generated
input, then chains of calls following the document's links (purchase, then cashout /
open / cancel of what it answered). Every request is signed with the operator's key by
``tests/contract/hooks.py``. Any 5xx, undocumented status, header, content type
or body shape fails the run, and this test.

Then the negative runs: the same operations unsigned and wrongly signed must all be 401
with the matching code; and a self-check that the harness does fail on a document that
does not match the service.

Last, what schemathesis cannot send (it serialises Python values itself): hostile JSON
texts and query strings from ``tests/contract/hostile.py``, signed, through Hypothesis;
and chunked bodies over the size limit, on a socket of our own, through gunicorn.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lootbox.signing import signature_matches
from tests.conftest import fresh_postgres_database
from tests.contract import hooks, hostile
from tests.system.stack import SystemStack, start_stack

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = Path(sys.executable).parent / "st"
# Hard cap on one ``st run`` (the full run takes ~10 s on two cores).
RUN_TIMEOUT = 150
MIN_CASES = 500


@pytest.fixture(scope="module")
def live() -> Iterator[SystemStack]:
    with fresh_postgres_database("lootbox_contract") as url, start_stack(url) as stack:
        # USD and JPY have rates, GBP none: both sides of every currency rule get exercised.
        stack.cli("operators", "update", stack.slug, "--rate", "USD=1.0842", "--rate", "JPY=162.5")
        # schemathesis.toml feeds this id to generated purchases.
        assert stack.box_version_id == 1
        yield stack


def st_run(
    stack: SystemStack, location: str, *args: str, signing: str = "valid"
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.contract.hooks",
        "LOOTBOX_CONTRACT_KEY_ID": stack.key_id,
        "LOOTBOX_CONTRACT_SECRET": stack.secret,
        "LOOTBOX_CONTRACT_SIGNING": signing,
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [str(ST), "--config-file", str(CONFIG), "run", location, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def report(done: subprocess.CompletedProcess[str]) -> str:
    return f"st exited {done.returncode}\n{done.stdout[-12000:]}\n{done.stderr[-3000:]}"


def cases_passed(output: str) -> int:
    match = re.search(r"(\d+) generated, (\d+) passed", output)
    return int(match.group(2)) if match else 0


def test_live_service_conforms_to_its_openapi_document(live: SystemStack) -> None:
    done = st_run(live, f"{live.base_url}/openapi.json")
    assert done.returncode == 0, report(done)
    assert cases_passed(done.stdout) >= MIN_CASES, report(done)
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in done.stdout, report(done)

    # The generated traffic reached the money paths, and none of it broke exactly-once.
    moves = live.wallet_transactions()
    kinds = Counter(str(t["reason"]) for t in moves)
    assert kinds["open"] and kinds["prepay"] and kinds["cashback"], kinds
    credits = Counter(
        (t["reason"], t["inventoryItemId"] or t["roundPublicId"])
        for t in moves
        if t["type"] == "wallet.credit"
    )
    assert max(credits.values()) == 1, "an item or a round credited twice"
    debits = Counter(t["roundPublicId"] for t in moves if t["type"] == "wallet.debit")
    assert max(debits.values()) == 1, "a round debited twice"


@pytest.mark.parametrize("signing", ["none", "wrong"])
def test_unsigned_and_wrongly_signed_requests_are_documented_401s(
    live: SystemStack, signing: str
) -> None:
    done = st_run(
        live,
        f"{live.base_url}/openapi.json",
        "--include-path-regex",
        "^/api/s2s/",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "10",
        signing=signing,
    )
    assert done.returncode == 0, report(done)
    assert cases_passed(done.stdout) >= 50, report(done)
    # Nothing got through: no money moved for the unsigned runs' players.
    assert all(t["playerExternalId"] != "unsigned" for t in live.wallet_transactions())


def test_the_harness_fails_on_a_document_the_service_does_not_match(
    live: SystemStack, tmp_path: Path
) -> None:
    """A test that cannot fail is a defect: with one field the service never sends made
    required, and the signed health check's 401 left out, both runs must fail."""
    document = requests.get(f"{live.base_url}/openapi.json", timeout=10).json()
    wrong = copy.deepcopy(document)
    wrong["components"]["schemas"]["Health"]["required"].append("uptime")
    wrong["components"]["schemas"]["Health"]["properties"]["uptime"] = {"type": "integer"}
    del wrong["paths"]["/api/s2s/health"]["get"]["responses"]["401"]
    path = tmp_path / "wrong-openapi.json"
    path.write_text(json.dumps(wrong))
    common = ["--url", live.base_url, "--include-path", "/api/s2s/health", "--phases", "examples"]

    signed = st_run(live, str(path), *common)
    assert signed.returncode == 1, report(signed)
    assert "uptime" in signed.stdout, report(signed)

    unsigned = st_run(live, str(path), *common, signing="none")
    assert unsigned.returncode == 1, report(unsigned)
    assert "401" in unsigned.stdout and "Undocumented" in unsigned.stdout, report(unsigned)


# --- hostile input the generated traffic cannot express ----------------------------------------

HOSTILE = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,  # like the schemathesis run: a CI failure reproduces locally
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MONEY_PATHS = ("/api/s2s/cashout", "/api/s2s/cancel", "/api/s2s/purchase", "/api/s2s/open")
READ_PATHS = ("/api/s2s/inventory", "/api/s2s/history")
# The deployment's body limit: tests.system.stack leaves MAX_CONTENT_LENGTH at its default.
BODY_LIMIT = 1024 * 1024


def assert_no_server_error(status: int, content_type: str, body: bytes, what: object) -> None:
    """Below 500, JSON, and every 4xx in the error envelope (contract section 2)."""
    assert status < 500, (what, status, body[:300])
    assert content_type.startswith("application/json"), (what, status, content_type)
    document = json.loads(body)
    if status >= 400:
        assert set(document) == {"error"}, (what, document)
        assert isinstance(document["error"].get("code"), str), (what, document)
        assert isinstance(document["error"].get("message"), str), (what, document)


@pytest.fixture(scope="module")
def http_session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@HOSTILE
@given(path=st.sampled_from(MONEY_PATHS), body=hostile.hostile_bodies)
def test_hostile_json_bodies_never_cause_a_server_error(
    live: SystemStack, http_session: requests.Session, path: str, body: bytes
) -> None:
    """Signed, so that each body gets past authentication to the parser and the schema."""
    answer = http_session.post(
        f"{live.base_url}{path}", data=body, headers=live.signed("POST", path, body), timeout=15
    )

    assert_no_server_error(
        answer.status_code, answer.headers.get("Content-Type", ""), answer.content, body[:200]
    )


@HOSTILE
@given(path=st.sampled_from(READ_PATHS), query=hostile.hostile_queries)
def test_hostile_query_strings_never_cause_a_server_error(
    live: SystemStack, http_session: requests.Session, path: str, query: str
) -> None:
    answer = http_session.get(
        f"{live.base_url}{path}?{query}", headers=live.signed("GET", path, b""), timeout=15
    )

    assert_no_server_error(
        answer.status_code, answer.headers.get("Content-Type", ""), answer.content, query
    )


def post_chunked(
    stack: SystemStack, path: str, body: bytes, *, sign_body: bytes | None = None
) -> tuple[int, str, bytes]:
    """POST ``body`` with ``Transfer-Encoding: chunked`` and no Content-Length, over a
    socket of our own (``http.client`` chunks an iterable body)."""
    headers = stack.signed("POST", path, body if sign_body is None else sign_body)
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=15)
    try:
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        conn.request("POST", path, body=chunks, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.getheader("Content-Type", ""), answer.read()
    finally:
        conn.close()


def padded_cashout(player: str, item_id: int, size: int) -> bytes:
    """A valid cashout body, padded with trailing whitespace (still valid JSON) to ``size``.
    Its own key: the generated traffic may have used the item's default key already."""
    document = {"playerExternalId": player, "inventoryItemId": item_id, "idempotencyKey": player}
    body = json.dumps(document).encode()
    return body + b" " * (size - len(body))


@pytest.mark.parametrize("signed_over", ["whole-body", "first-limit-bytes"])
def test_a_chunked_body_over_the_limit_is_refused_under_gunicorn_never_truncated(
    live: SystemStack, signed_over: str
) -> None:
    """gunicorn ends a chunked body itself (``wsgi.input_terminated``); werkzeug once cut
    it at the limit and the signature was checked over what was left."""
    player = live.new_player("chunked")
    item = live.won_item(player)
    body = padded_cashout(player, item, BODY_LIMIT + 1024)
    sign_body = body[:BODY_LIMIT] if signed_over == "first-limit-bytes" else None

    status, content_type, answer = post_chunked(live, "/api/s2s/cashout", body, sign_body=sign_body)

    assert status == 413, (status, answer[:300])
    assert json.loads(answer)["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert content_type.startswith("application/json")
    assert live.wallet_transactions(inventoryItemId=item, type="wallet.credit") == []


def test_a_chunked_body_of_exactly_the_limit_is_processed_under_gunicorn(
    live: SystemStack,
) -> None:
    player = live.new_player("chunked")
    item = live.won_item(player)

    status, _, answer = post_chunked(
        live, "/api/s2s/cashout", padded_cashout(player, item, BODY_LIMIT)
    )

    assert status == 200, answer[:300]
    assert len(live.wallet_transactions(inventoryItemId=item, type="wallet.credit")) == 1


# --- the hooks themselves (no server needed) -------------------------------------------------


def test_requests_are_signed_over_the_bytes_sent_and_the_path_without_query() -> None:
    signer = hooks.HmacSignature("lk_test", "s3cret")
    prepared = requests.Request(
        "POST", "http://127.0.0.1:1/api/s2s/cashout?x=1", json={"inventoryItemId": 1, "é": "ü"}
    ).prepare()
    signed = signer(prepared)
    body = signed.body if isinstance(signed.body, bytes) else str(signed.body).encode()
    assert signed.headers["X-Key-Id"] == "lk_test"
    assert signature_matches(
        "s3cret",
        signed.headers["X-Timestamp"],
        "POST",
        "/api/s2s/cashout",
        body,
        signed.headers["X-Signature"],
    )


def test_the_unsigned_check_fails_on_anything_but_its_401(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def answer(status: int, code: str) -> Any:
        return SimpleNamespace(status_code=status, json=lambda: {"error": {"code": code}})

    case: Any = SimpleNamespace(path="/api/s2s/cashout")
    check = hooks.unsigned_requests_are_refused
    monkeypatch.setenv("LOOTBOX_CONTRACT_SIGNING", "none")
    assert check(None, answer(401, "MISSING_HEADERS"), case)
    for wrong in (answer(200, ""), answer(404, "ROUND_NOT_FOUND"), answer(401, "TIMESTAMP_SKEW")):
        with pytest.raises(AssertionError):
            check(None, wrong, case)
    monkeypatch.setenv("LOOTBOX_CONTRACT_SIGNING", "valid")
    assert check(None, answer(200, ""), case) is None
