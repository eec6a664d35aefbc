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
from bench.profile import (
    IDLE,
    NO_FRAME,
    OTHER,
    REPO_ROOT,
    Frame,
    ProfileSummary,
    attribute,
    module_path,
    parse_collapsed,
    parse_line,
    summarize,
    summarize_files,
)
from bench.report import render, replace_section, results_table, row_line, targets
from bench.results import Counts, Row, Run, aggregate
from bench.run import aggregate_rows, pair, parse_args
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


# --- the baseline measured again right before each scenario ----------------------------------


def test_a_scenario_is_compared_with_the_baseline_measured_right_before_it() -> None:
    first_baseline = Row("baseline", "1", rps=8000.0)
    # The machine slowed down between the first baseline and the replay.
    replay = pair(Row("replay", "2", rps=3000.0), baseline_rps=5000.0)

    found = {t.name: t for t in targets(_run([first_baseline, replay]), 2.0, 50)}
    target = found["replay ≥ 0.6× baseline"]

    assert replay.extra["paired_ratio"] == 0.6
    assert target.status == "PASS"
    assert "3,000 req/s and 5,000 for the baseline measured just before it" in target.measured
    assert "0.375 against the run's first baseline" in target.measured


def test_without_a_paired_baseline_the_first_baseline_is_used() -> None:
    replay = pair(Row("replay", "2", rps=3000.0), baseline_rps=None)

    found = {t.name: t for t in targets(_run([Row("baseline", "1", rps=8000.0), replay]), 2.0, 50)}

    assert "paired_ratio" not in replay.extra
    assert found["replay ≥ 0.6× baseline"].status == "FAIL"
    assert found["replay ≥ 0.6× baseline"].measured == "0.375 (3,000 / 8,000 req/s)"


def test_rounds_keep_the_median_of_their_own_paired_ratios() -> None:
    # Ratios 0.2, 0.4, 0.6: the median ratio (0.4) is not the median rate (300) divided by
    # the median baseline (500), which is 0.6.
    rounds = [
        pair(Row("replay", "2", rps=100.0), 500.0),
        pair(Row("replay", "2", rps=400.0), 1000.0),
        pair(Row("replay", "2", rps=300.0), 500.0),
    ]

    row = aggregate(rounds)

    assert row.extra["paired_ratio"] == 0.4
    assert (row.rps, row.extra["paired_baseline_rps"]) == (300.0, 500.0)
    assert [s["paired_ratio"] for s in row.extra["samples"]] == [0.2, 0.4, 0.6]


def test_a_round_without_a_paired_baseline_leaves_the_row_unpaired() -> None:
    row = aggregate([pair(Row("replay", "2", rps=300.0), 600.0), Row("replay", "2", rps=280.0)])

    assert "paired_ratio" not in row.extra


def test_sizes_are_compared_through_their_paired_baselines() -> None:
    # Raw req/s fall by 20 % from 1k to 1M items, but the baseline fell as much: the
    # machine was slower, the database's size cost nothing.
    small = pair(Row("replay", "2", rps=2000.0, size=1000), 8000.0)
    large = pair(Row("replay", "2", rps=1600.0, size=1_000_000), 6400.0)
    run = _run([small, large])
    run.mode = "scale"

    found = {t.name: t for t in targets(run, 2.0, 50)}
    target = found["replay: 1M items ≥ 0.9× 1k items"]

    assert target.status == "PASS"
    assert target.measured.startswith("1.000 (0.250 / 0.250 of the baseline measured just before")
    assert "raw req/s 1,600 / 2,000 = 0.800" in target.measured


def test_the_slow_wallet_is_compared_with_the_instant_one_through_their_paired_baselines() -> None:
    # The machine was a third slower while the slow-wallet scenario ran.
    instant = pair(Row("cashout", "3a", rps=200.0), 6000.0)
    slow = pair(Row("cashout_50ms", "3b", rps=100.0), 4000.0)

    found = {t.name: t for t in targets(_run([instant, slow]), 2.0, 50)}
    target = found["cashout, wallet 50 ms ≥ 0.5× wallet instant"]

    assert target.status == "PASS"
    assert target.measured.startswith("0.750 (0.025 / 0.033 of the baseline measured just")
    assert "raw req/s 100 / 200 = 0.500" in target.measured


def test_the_results_table_shows_the_paired_baseline_of_each_row() -> None:
    row = pair(Row("replay", "2. replay", rps=3000.0, requests=10), 5000.0)
    row.ratio = row.extra["paired_ratio"]

    table = results_table([Row("baseline", "1. baseline", rps=8000.0), row])

    assert "| × baseline | baseline just before, req/s |" in table
    assert "| 2. replay | 3,000 | n/a | n/a | 0.60 | 5,000 | 10 | 0 |" in table


def test_the_progress_line_gives_the_paired_ratio_as_soon_as_the_scenario_ends() -> None:
    row = pair(Row("replay", "2", rps=3000.0, p50_ms=1.0, p99_ms=2.0), 5000.0)

    assert row_line(row) == (
        "replay: 3,000 req/s (0.600× the baseline just before it), p50 1.0 ms, p99 2.0 ms"
    )


def test_pairing_is_on_by_default_and_can_be_turned_off() -> None:
    assert parse_args([]).pair_s == 5.0
    assert parse_args(["--quick"]).pair_s == 2.0
    assert parse_args(["--pair", "0"]).pair_s == 0.0


# --- py-spy profiles (bench/profile.py) ---------------------------------------------------

_MASTER = 'process 100:"/venv/bin/python /venv/bin/gunicorn --config config/gunicorn.py wsgi:app"'
_WORKER = f'{_MASTER};process 101:"/venv/bin/python /venv/bin/gunicorn --config c.py wsgi:app"'
# As --full-filenames writes them (the library and our code), and as short names.
_LIB = "/venv/lib/python3.11/site-packages"
_STDLIB = "/usr/lib/python3.11"
_REQUEST = (
    f"Thread._bootstrap ({_STDLIB}/threading.py:1002);"
    f"_worker ({_STDLIB}/concurrent/futures/thread.py:83);"
    f"ThreadWorker.handle ({_LIB}/gunicorn/workers/gthread.py:287);"
    f"Flask.wsgi_app ({_LIB}/flask/app.py:1511);cashout ({REPO_ROOT}/lootbox/api/s2s.py:40)"
)
PROFILE_SAMPLE = "\n".join(
    [
        # SQLAlchemy calls psycopg: the innermost known frame is psycopg's.
        f"{_WORKER};{_REQUEST};Session.execute ({_LIB}/sqlalchemy/orm/session.py:2300);"
        f"Cursor.execute ({_LIB}/psycopg/cursor.py:97) 6",
        # SQLAlchemy's own work, in a standard-library helper that belongs to no area.
        f"{_WORKER};{_REQUEST};Session.execute ({_LIB}/sqlalchemy/orm/session.py:2300);"
        "SQLCompiler.process (sqlalchemy/sql/compiler.py:900);Condition.__enter__ "
        "(threading.py:271) 3",
        # --threads adds a thread frame after the process frames.
        f"{_WORKER};thread (0x7f3a2b): MainThread;{_REQUEST};dumps (json/__init__.py:231);"
        "JSONEncoder.encode (json/encoder.py:200) 2",
        # Our service, in the standard library's uuid: ours, by subpackage.
        f"{_WORKER};{_REQUEST};award ({REPO_ROOT}/lootbox/services/cashback.py:12);"
        f"uuid4 ({_STDLIB}/uuid.py:723) 1",
        # A pool thread between requests, and the master between its checks.
        f"{_WORKER};Thread._bootstrap (threading.py:1002);_worker "
        "(concurrent/futures/thread.py:83) 4",
        f"{_MASTER};Arbiter.run (gunicorn/arbiter.py:209);"
        "Arbiter.sleep (gunicorn/arbiter.py:360) 1",
        # Nothing known on the stack, and a process frame without any Python frame.
        f"{_WORKER};<module> (somewhere.py:1);helper (somewhere.py:9) 2",
        f"{_WORKER} 1",
        "",
        "not a stack line",
    ]
)


def test_collapsed_stack_lines_lose_their_process_and_thread_prefixes() -> None:
    stack = parse_line(
        f"{_WORKER};thread (0x7f3a2b): MainThread;dumps (json/__init__.py:231);"
        "JSONEncoder.encode (json/encoder.py:200) 2"
    )

    assert stack is not None
    assert stack.count == 2
    assert stack.pids == (100, 101)
    assert stack.worker == 101
    assert stack.frames == (
        Frame("dumps", "json/__init__.py", 231),
        Frame("JSONEncoder.encode", "json/encoder.py", 200),
    )
    assert parse_line("") is None
    assert parse_line("no count here") is None
    assert parse_line(f"{_MASTER} 3") == parse_collapsed([f"{_MASTER} 3"])[0]


def test_frames_are_named_by_module_path_and_labelled_without_ambiguity() -> None:
    assert module_path("/venv/lib/python3.11/site-packages/redis/_parsers/socket.py") == (
        "redis/_parsers/socket.py"
    )
    assert module_path("/usr/lib/python3.11/socket.py") == "socket.py"
    assert module_path(f"{REPO_ROOT}/lootbox/api/s2s.py") == "lootbox/api/s2s.py"
    # Not our app.py: py-spy's own short name for it would be just "app.py".
    flask = Frame("App.debug", "/venv/lib/python3.11/site-packages/flask/sansio/app.py")
    assert attribute([flask]) == "flask/werkzeug"
    assert attribute([Frame("<module>", f"{REPO_ROOT}/app.py")]) == "lootbox"
    assert Frame("SocketBuffer.read", "redis/_parsers/socket.py", 9).label == (
        "SocketBuffer.read (redis/…/socket.py)"
    )
    assert Frame("SocketIO.readinto", "socket.py", 9).label == "SocketIO.readinto (socket.py)"
    assert Frame("Connection.wait", "psycopg/connection.py").label == (
        "Connection.wait (psycopg/connection.py)"
    )
    assert Frame("idempotent.<locals>.wrapper", "lootbox/api/idempotent.py").label == (
        "idempotent.wrapper (lootbox/api/idempotent.py)"
    )


def test_each_sample_goes_to_its_innermost_known_area() -> None:
    stacks = {stack.count: stack for stack in parse_collapsed(PROFILE_SAMPLE.splitlines())}

    assert attribute(stacks[6].frames) == "psycopg"
    assert attribute(stacks[3].frames) == "sqlalchemy"
    assert attribute(parse_collapsed(["<module> (x.py:1);helper (x.py:9) 1"])[0].frames) == OTHER
    assert attribute(()) == NO_FRAME
    # A blocking call counts as waiting only when innermost: under every request of a
    # gthread worker is the pool's _worker.
    pool = Frame("_worker", "/usr/lib/python3.11/concurrent/futures/thread.py", 83)
    assert attribute([pool]) == IDLE
    assert attribute([pool, Frame("Future.set_result", "concurrent/futures/_base.py")]) == OTHER
    summary = summarize(parse_collapsed(PROFILE_SAMPLE.splitlines()))

    assert summary.samples == 20
    assert summary.areas == {
        "psycopg": 6,
        IDLE: 5,  # the pool thread's _worker (4) and the master's sleep (1)
        "sqlalchemy": 3,
        "json": 2,
        OTHER: 2,  # Python frames, none of a known area
        NO_FRAME: 1,
        "lootbox.services": 1,
    }
    assert summary.share("psycopg") == 0.3
    assert summary.workers == 1  # the master's own sample is not a worker's
    # Anywhere on the stack: SQLAlchemy is under psycopg's samples too.
    assert summary.areas_inclusive["sqlalchemy"] == 9
    assert summary.areas_inclusive["lootbox.api"] == 12


def test_top_functions_by_self_and_inclusive_samples() -> None:
    summary = summarize(parse_collapsed(PROFILE_SAMPLE.splitlines()), top=3)

    assert summary.top_self == [
        ("Cursor.execute (psycopg/cursor.py)", 6),
        ("_worker (concurrent/…/thread.py)", 4),
        ("Condition.__enter__ (threading.py)", 3),
    ]
    # On every stack of a pool thread (16 of the 20 samples), counted once per stack.
    assert dict(summary.top_inclusive)["_worker (concurrent/…/thread.py)"] == 16
    assert dict(summary.top_inclusive)["Thread._bootstrap (threading.py)"] == 16
    assert summary.top_ours[0] == ("cashout (lootbox/api/s2s.py)", 12)


def test_profile_summary_round_trips_through_json_and_rounds_merge_from_files(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "cashout.txt", tmp_path / "cashout-2.txt"
    first.write_text(PROFILE_SAMPLE)
    second.write_text(PROFILE_SAMPLE)
    summary = summarize_files([first])
    summary.py_spy_cpu_s = 1.5

    assert ProfileSummary.from_json(json.loads(json.dumps(summary.to_json()))) == summary

    rounds = []
    for path in (first, second):
        round_summary = summarize_files([path])
        round_summary.py_spy_cpu_s = 1.0
        rounds.append(Row("cashout", "3a", rps=100.0, extra={"profile": round_summary.to_json()}))
    (row,) = aggregate_rows(rounds)
    merged = ProfileSummary.from_json(row.extra["profile"])

    assert merged.samples == 40
    assert merged.areas["psycopg"] == 12
    assert merged.py_spy_cpu_s == 2.0
    assert merged.files == [str(first), str(second)]


def test_the_profile_section_is_rendered_only_when_there_are_profiles(tmp_path: Path) -> None:
    path = tmp_path / "cashout.txt"
    path.write_text(PROFILE_SAMPLE)
    plain = _run([Row("baseline", "1", rps=1000.0), Row("cashout", "3a", rps=100.0)])
    profiled = _run(
        [
            Row("baseline", "1", rps=1000.0),
            Row("cashout", "3a", rps=100.0, extra={"profile": summarize_files([path]).to_json()}),
        ]
    )

    assert "py-spy" not in render(plain, 20)
    text = render(profiled, 20)
    assert "Where the app's CPU went (py-spy, on-CPU samples)" in text
    assert "| scenario | samples | psycopg | idle/waiting |" in text
    assert "| cashout | 20 | 30 % | 25 % |" in text
    assert "- **cashout** (20 samples, 1 worker): `Cursor.execute (psycopg/cursor.py)` 30 %" in (
        text
    )
    again = Run.from_json(json.loads(json.dumps(profiled.to_json(), default=str)))
    assert render(again, 20) == text


def test_profile_option() -> None:
    assert parse_args(["--quick", "--profile"]).profile
    assert not parse_args(["--quick"]).profile
