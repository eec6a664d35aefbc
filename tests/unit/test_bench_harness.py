"""The benchmark harness's pure parts: request files for wrk, result parsing, counting
and the generated document. No wrk, no servers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from bench.counters import (
    BackendCpu,
    CpuSnapshot,
    classify_statement,
    commandstats_delta,
    cpu_delta_ms,
    parse_monitor_line,
    parse_prometheus,
    parse_statement_log,
    total_statements,
    transactions_of,
)
from bench.payloads import (
    CASHOUT_PATH,
    Credentials,
    cancel_requests,
    cashout_requests,
    purchase_requests,
    read_wrk_data,
    write_wrk_data,
)
from bench.report import render, replace_section, results_table, targets
from bench.results import Counts, Row, Run, aggregate
from bench.storm import percentile
from bench.wrk import parse_result
from lootbox.signing import signature_matches

CREDENTIALS = Credentials("lk_test", "s3cret")


def _parse_raw(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, body


def test_each_cashout_request_is_signed_over_its_own_body() -> None:
    requests = cashout_requests(CREDENTIALS, [(7, "p-1"), (8, "p-2")], now=1_700_000_000)

    bodies = [json.loads(r.body) for r in requests]
    assert bodies == [
        {"playerExternalId": "p-1", "inventoryItemId": 7},
        {"playerExternalId": "p-2", "inventoryItemId": 8},
    ]
    for request in requests:
        assert request.headers["X-Key-Id"] == "lk_test"
        assert request.headers["X-Timestamp"] == "1700000000"
        assert signature_matches(
            "s3cret",
            "1700000000",
            "POST",
            CASHOUT_PATH,
            request.body,
            request.headers["X-Signature"],
        )
    assert requests[0].headers["X-Signature"] != requests[1].headers["X-Signature"]


def test_cancel_and_purchase_requests_name_fresh_subjects() -> None:
    cancels = cancel_requests(CREDENTIALS, [("r_A1", "p-1")])
    assert json.loads(cancels[0].body) == {"playerExternalId": "p-1", "roundPublicId": "r_A1"}

    purchases = purchase_requests(CREDENTIALS, box_version_id=3, count=3, tag="t")
    actions = [json.loads(r.body)["clientActionId"] for r in purchases]
    assert actions == ["t-0", "t-1", "t-2"]
    assert json.loads(purchases[0].body)["reels"] == [{"reelIndex": 0, "boxVersionId": 3}]


def test_raw_request_is_a_complete_http_request_with_its_length() -> None:
    request = cashout_requests(CREDENTIALS, [(1, "p")])[0]

    line, headers, body = _parse_raw(request.raw("127.0.0.1:8080"))

    assert line == f"POST {CASHOUT_PATH} HTTP/1.1"
    assert headers["Host"] == "127.0.0.1:8080"
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Content-Length"]) == len(body)
    assert body == request.body


def test_wrk_data_file_round_trips_every_request(tmp_path: Path) -> None:
    requests = cashout_requests(CREDENTIALS, [(n, f"p-{n}") for n in range(1, 50)])
    path = tmp_path / "requests.dat"

    size = write_wrk_data(path, requests, "127.0.0.1:1")

    assert size == path.stat().st_size
    assert read_wrk_data(path) == [r.raw("127.0.0.1:1") for r in requests]


def test_wrk_result_gives_rate_percentiles_and_errors() -> None:
    document = {
        "duration_us": 2_000_000,
        "requests": 1000,
        "bytes": 12345,
        "errors": {"connect": 0, "read": 1, "write": 0, "status": 3, "timeout": 0},
        "latency_us": {
            "min": 100,
            "max": 90_000,
            "mean": 2000.5,
            "stdev": 10.0,
            "percentiles": {"50": 1500, "75": 2000, "90": 3000, "99": 12_000, "99.9": 50_000},
        },
        "statuses": {"200": 997, "409": 3},
        "overflow": 2,
        "pool": 1000,
        "mode": "once",
    }

    result = parse_result(document)

    assert result.rps == 500
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (1.5, 12.0, 90.0)
    assert result.non_2xx == 3
    assert result.errors == 4  # the read error counts too; "status" is not double counted
    assert result.exhausted


def test_monitor_lines_separate_round_trips_from_script_commands() -> None:
    assert parse_monitor_line('+1700000000.123 [0 127.0.0.1:5123] "EVALSHA" "ab" "1"') == (
        "127.0.0.1:5123",
        "EVALSHA",
    )
    assert parse_monitor_line('1700000000.124 [0 lua] "set" "k" "v"') == ("lua", "SET")
    assert parse_monitor_line("+OK") is None


def test_statement_kinds() -> None:
    assert classify_statement("BEGIN") == "BEGIN"
    assert classify_statement(";") == "; (pool pre-ping)"
    assert classify_statement("SELECT 1") == "SELECT 1 (ping)"
    assert classify_statement("SELECT api_keys.id FROM api_keys WHERE x") == "SELECT api_keys"
    assert classify_statement("INSERT INTO money_movements (a) VALUES ($1)") == (
        "INSERT money_movements"
    )
    assert classify_statement("UPDATE rounds SET status=$1") == "UPDATE rounds"


def test_statement_log_counts_only_our_database_and_not_our_own_connection() -> None:
    log = "\n".join(
        [
            "2026-01-01 00:00:00.001 UTC [101] postgres@bench_db LOG:  statement: BEGIN",
            "2026-01-01 00:00:00.002 UTC [101] postgres@bench_db LOG:  execute <unnamed>: "
            "SELECT api_keys.id",
            "\tFROM api_keys",
            "2026-01-01 00:00:00.002 UTC [101] postgres@bench_db DETAIL:  parameters: $1 = 'x'",
            "2026-01-01 00:00:00.003 UTC [101] postgres@bench_db LOG:  execute _pg3_0: "
            "UPDATE rounds SET status=$1",
            "2026-01-01 00:00:00.004 UTC [101] postgres@bench_db LOG:  statement: COMMIT",
            "2026-01-01 00:00:00.005 UTC [102] postgres@other_db LOG:  statement: BEGIN",
            "2026-01-01 00:00:00.006 UTC [103] postgres@bench_db LOG:  statement: ANALYZE",
            "2026-01-01 00:00:00.007 UTC [77] LOG:  checkpoint starting: time",
        ]
    )

    found = parse_statement_log(log, "bench_db", exclude_pids={103})

    assert found == Counter({"BEGIN": 1, "SELECT api_keys": 1, "UPDATE rounds": 1, "COMMIT": 1})
    assert total_statements(found, with_transaction_control=False) == 2
    assert total_statements(found, with_transaction_control=True) == 4
    assert transactions_of(found) == 1


def test_prometheus_counters_are_summed_over_labels() -> None:
    text = "\n".join(
        [
            "# HELP lootbox_db_statements_total SQL statements",
            "# TYPE lootbox_db_statements_total counter",
            'lootbox_db_statements_total{endpoint="cashout"} 12.0',
            'lootbox_db_statements_total{endpoint="cancel"} 3.0',
            'lootbox_db_statements_created{endpoint="cancel"} 1.7e9',
            "lootbox_redis_commands_total 5",
            "lootbox_other_total 99",
        ]
    )

    assert parse_prometheus(text) == {
        "lootbox_db_statements_total": 15.0,
        "lootbox_redis_commands_total": 5.0,
    }


def test_commandstats_delta_drops_our_info_calls_and_unchanged_commands() -> None:
    before = {"evalsha": 10, "set": 5, "info": 3, "get": 1}
    after = {"evalsha": 30, "set": 15, "info": 5, "get": 1, "del": 2}

    assert commandstats_delta(before, after) == {"del": 2, "evalsha": 20, "set": 10}


def test_cpu_per_request_by_part() -> None:
    before = CpuSnapshot({"app": 1.0, "wallet": 0.5})
    after = CpuSnapshot({"app": 3.0, "wallet": 0.75})

    assert cpu_delta_ms(before, after, requests=100) == {"app": 20.0, "wallet": 2.5}


def test_backend_cpu_counts_backends_born_during_the_run_whole() -> None:
    cpu = BackendCpu()
    cpu.observe({10: 2.0})  # before the run: backend 10 exists
    cpu.observe({10: 2.5, 11: 0.25})  # 11 opened during the run
    cpu.observe({10: 3.0})  # 11 closed: its last reading stands

    assert cpu.total_s() == 1.25


def test_nearest_rank_percentile() -> None:
    values = [float(n) for n in range(1, 201)]
    assert percentile(values, 50) == 100.0
    assert percentile(values, 99) == 198.0
    assert percentile(values, 100) == 200.0
    assert percentile([], 99) == 0.0


def test_doc_section_is_inserted_once_then_replaced_in_place() -> None:
    document = "# Benchmarks\n\nMethod text.\n"

    first = replace_section(document, "results", "table one")
    second = replace_section(first + "\nAfter.\n", "results", "table two")

    assert first.count("<!-- bench:results:begin -->") == 1
    assert "table one" in first
    assert "table two" in second and "table one" not in second
    assert second.endswith("After.\n")
    assert second.startswith("# Benchmarks\n\nMethod text.\n")


def _run(rows: list[Row]) -> Run:
    run = Run(mode="full", command="python -m bench", started_at="2026-01-01T00:00:00+00:00")
    run.rows = rows
    return run


def test_targets_pass_fail_and_invalid_when_the_run_had_errors() -> None:
    baseline = Row("baseline", "1. baseline", rps=1000.0)
    replay = Row("replay", "2. replay", rps=700.0)
    cashout = Row("cashout", "3a. cashout", rps=200.0, statuses={200: 10, 503: 1})
    slow = Row("cashout_50ms", "3b. cashout 50 ms", rps=150.0)
    storm = Row("storm", "5a. storm", p99_ms=300.0, extra={"wallet_credits": 1})

    found = {
        t.name: t.status
        for t in targets(_run([baseline, replay, cashout, slow, storm]), wait_s=2.0, delay_ms=50)
    }

    assert found["replay ≥ 0.6× baseline"] == "PASS"
    assert found["first-time cashout, wallet instant ≥ 0.25× baseline"].startswith("INVALID")
    assert found["storm: exactly one wallet credit"] == "PASS"
    assert found["storm: p99 < idempotency wait + 200 ms"] == "PASS"


def test_a_storm_with_two_credits_fails_and_is_flagged() -> None:
    storm = Row("storm", "5a. storm", p99_ms=300.0, extra={"wallet_credits": 2})

    found = {t.name: t.status for t in targets(_run([storm]), wait_s=2.0, delay_ms=50)}

    assert found["storm: exactly one wallet credit"] == "FAIL"
    assert "2 wallet credits (must be 1)" in storm.flags


def test_results_table_shows_counts_and_na_for_what_was_not_counted() -> None:
    row = Row("replay", "2. replay", rps=500.0, p50_ms=2.0, p99_ms=9.0, requests=1000)
    row.exact = Counts(requests=40, sql_statements=4.0, sql_transactions=1.0, redis_round_trips=1.0)
    other = Row("cancel", "3c. cancel", rps=100.0, requests=10)

    table = results_table([row, other])

    assert "| 2. replay | 500 | 2.0 | 9.0 | — | 1,000 | 0 | 4 | 1 | 1 |" in table
    assert "| 3c. cancel | 100 | n/a | n/a | — | 10 | 0 | n/a | n/a | n/a |" in table


def test_rounds_are_merged_into_their_median_with_every_round_listed() -> None:
    rounds = [
        Row(
            "cashout",
            "3a",
            rps=100.0,
            p99_ms=300.0,
            requests=1000,
            statuses={200: 1000},
            cpu_ms={"app": 10.0},
            size=1000,
        ),
        Row(
            "cashout",
            "3a",
            rps=140.0,
            p99_ms=200.0,
            requests=1400,
            statuses={200: 1399, 503: 1},
            cpu_ms={"app": 12.0},
            size=1000,
        ),
        Row(
            "cashout",
            "3a",
            rps=120.0,
            p99_ms=250.0,
            requests=1200,
            statuses={200: 1200},
            cpu_ms={"app": 11.0},
            size=1000,
        ),
    ]

    row = aggregate(rounds)

    assert (row.rps, row.p99_ms, row.cpu_ms) == (120.0, 250.0, {"app": 11.0})
    assert row.requests == 3600
    assert row.statuses == {200: 3599, 503: 1}
    assert [s["rps"] for s in row.extra["samples"]] == [100.0, 140.0, 120.0]
    assert row.flags == ["1 errors (503×1)"]


def test_errors_in_the_counting_pass_flag_the_row() -> None:
    row = Row("cancel", "3c", rps=100.0)
    row.exact = Counts(requests=40, statuses={200: 39, 409: 1})

    assert row.flags == ["counting pass: 1 errors (409×1)"]


def test_a_saved_run_renders_the_same_after_a_round_trip_through_json() -> None:
    row = Row(
        "cashout",
        "3a",
        rps=120.0,
        p50_ms=5.0,
        p99_ms=9.0,
        requests=10,
        statuses={200: 9, 503: 1},
        cpu_ms={"app": 10.0},
    )
    row.exact = Counts(requests=40, sql_statements=18.0, statuses={200: 40})
    run = _run([Row("baseline", "1", rps=1000.0), row])
    run.record = {"machine": {"cores": 2}, "load_generator": {"wrk_connections": 32}}

    again = Run.from_json(json.loads(json.dumps(run.to_json(), default=str)))

    assert again.rows[1].statuses == {200: 9, 503: 1}
    assert again.rows[1].flags == row.flags
    assert render(again, 20) == render(run, 20)
