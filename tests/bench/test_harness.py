"""The benchmark's own pieces that need no server: the requests it signs, what it reads
from wrk and from the servers' counters, and the table it writes."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from bench import report
from bench.counts import Reading, per_request, pings, statement_kind
from bench.data import Credentials
from bench.load import Answer, cashouts, parse_wrk, percentile_ms
from bench.run import Row, parse_args, wanted
from lootbox.signing import signature_matches

CREDENTIALS = Credentials("key-1", "secret-1")
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_each_cashout_is_signed_over_its_own_body() -> None:
    requests = cashouts(CREDENTIALS, [(7, "p-7"), (8, "p-8")])

    assert [r.body for r in requests] == [
        b'{"playerExternalId":"p-7","inventoryItemId":7}',
        b'{"playerExternalId":"p-8","inventoryItemId":8}',
    ]
    for request in requests:
        h = request.headers
        assert h["X-Key-Id"] == "key-1"
        assert signature_matches(
            "secret-1", h["X-Timestamp"], "POST", request.path, request.body, h["X-Signature"]
        )


def test_a_raw_request_is_complete_with_its_length() -> None:
    (request,) = cashouts(CREDENTIALS, [(7, "p-7")])

    head, _, body = request.raw("127.0.0.1:8080").partition(b"\r\n\r\n")

    assert head.startswith(b"POST /api/s2s/cashout HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert f"Content-Length: {len(request.body)}".encode() in head and body == request.body


def test_wrk_result_gives_rate_percentiles_and_errors() -> None:
    result = parse_wrk(
        {
            "duration_us": 2_000_000,
            "requests": 1000,
            "errors": {"connect": 0, "read": 1, "timeout": 2, "status": 3},
            "statuses": {"200": 997, "503": 3},
            "overflow": 1,
            "latency_us": {"percentiles": {"50": 1500, "99": 12000}},
        }
    )

    assert (result.rps, result.p50_ms, result.p99_ms) == (500, 1.5, 12)
    assert result.errors == 3 + 3  # socket errors and non-2xx answers; "status" is the latter
    assert result.exhausted


def test_nearest_rank_percentile() -> None:
    answers = [Answer(200, n / 1000, b"") for n in range(1, 101)]

    assert percentile_ms(answers, 99) == 99
    assert percentile_ms(answers[:1], 99) == 1


def test_statements_are_named_by_verb_and_table() -> None:
    assert statement_kind("BEGIN") == "BEGIN"
    assert statement_kind('SELECT a.id FROM "inventory_items" a WHERE a.id = $1') == (
        "SELECT inventory_items"
    )
    assert statement_kind("INSERT INTO money_movements (a) VALUES ($1)") == (
        "INSERT money_movements"
    )
    assert statement_kind("UPDATE rounds SET status = $1") == "UPDATE rounds"


def test_pings_are_counted_from_the_log_for_one_database(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text(
        "2026-01-01 00:00:00.000 UTC [11] bench LOG:  statement: ;\n"
        "2026-01-01 00:00:00.001 UTC [11] bench LOG:  statement: BEGIN\n"
        "2026-01-01 00:00:00.002 UTC [12] bench LOG:  execute <unnamed>: ;\n"
        "2026-01-01 00:00:00.003 UTC [13] postgres LOG:  statement: ;\n"
    )

    assert pings(log, "bench") == 2


def test_per_request_counts_take_pings_out_of_transactions_and_into_round_trips() -> None:
    before = Reading(Counter({"BEGIN": 5}), 10, 3, 2, Counter({"evalsha": 1}))
    after = Reading(
        Counter({"BEGIN": 9, "COMMIT": 4, "SELECT items": 4, "UPDATE items": 4}),
        10 + 4 + 4,  # four transactions, four pings
        3,
        2 + 4,
        Counter({"evalsha": 3, "set": 2}),
    )

    counts = per_request(before, after, 2)

    assert counts.transactions == 2
    assert counts.round_trips == (4 + 4 + 4 + 4 + 4) / 2  # BEGIN, SELECT, UPDATE, COMMIT, ping
    assert counts.redis_calls == 2
    assert counts.detail["; (pool pre-ping)"] == 2
    assert "new connections" not in counts.detail
    assert "transactions without BEGIN/COMMIT" not in counts.detail


def test_the_table_compares_with_bare_flask_and_with_the_peer() -> None:
    rows = [
        Row("baseline", "bare", rps=1000.0),
        Row("replay", "ours: replay", rps=500.0),
        Row("peer_replay", "peer: replay", rps=250.0),
    ]

    table = report.main_table(rows)

    ours = next(line for line in table.splitlines() if line.startswith("| ours"))
    assert re.search(r"\| 500 \| — \| — \| 0.50 \| 2.00 \|", ours), ours


def test_the_section_is_inserted_once_then_replaced_in_place() -> None:
    document = "# Benchmarks\n\nintro\n"

    once = report.replace_section(document, "first")
    twice = report.replace_section(once + "\nafter\n", "second")

    assert once.count(report.BEGIN) == 1 and "first" in once
    assert "second" in twice and "first" not in twice and twice.endswith("after\n")


def test_only_a_full_run_updates_the_document() -> None:
    assert parse_args([]).write_docs
    for partial in (["--quick"], ["--only", "replay"], ["--workers", "8"], ["--no-docs"]):
        assert not parse_args(partial).write_docs, partial


def test_only_names_scenarios_by_key_or_kind_and_keeps_the_baseline() -> None:
    assert [s.key for s in wanted({"replay"})] == ["baseline", "replay", "peer_replay"]
    assert [s.key for s in wanted({"cancel", "storm"})] == ["baseline", "cancel", "storm"]


def test_the_peer_runs_on_the_same_libraries_as_the_service() -> None:
    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text().splitlines():
            match = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^\s;#]+)", line)
            if match:
                found[match.group(1).lower()] = match.group(2)
        return found

    ours, peer = (
        pins(REPO_ROOT / "requirements.txt"),
        pins(REPO_ROOT / "bench/requirements-peer.txt"),
    )
    shared = set(ours) & set(peer)

    assert shared >= {"flask", "sqlalchemy", "psycopg", "redis", "requests", "gunicorn"}
    assert {name: peer[name] for name in shared} == {name: ours[name] for name in shared}
