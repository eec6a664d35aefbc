"""Tables, targets and the generated sections of ``docs/benchmarks.md``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bench.profile import IDLE, NO_FRAME, OTHER, ProfileSummary
from bench.results import Counts, Row, Run

MARKERS = {
    "results": ("<!-- bench:results:begin -->", "<!-- bench:results:end -->"),
    "scale": ("<!-- bench:scale:begin -->", "<!-- bench:scale:end -->"),
}
MEMORY_TARGET_BYTES = 512


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _per(value: float | None) -> str:
    """A per-request count: at most two decimals, no trailing zeros."""
    if value is None:
        return "n/a"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def row_line(row: Row) -> str:
    """One line per finished scenario, for the progress log."""
    rate = f"{row.rps:,.0f} req/s" if row.rps is not None else f"{row.requests} requests"
    paired = row.extra.get("paired_ratio")
    if paired is not None:
        ratio = f" ({paired:.3f}× the baseline just before it)"
    else:
        ratio = f" ({row.ratio:.2f}× baseline)" if row.ratio is not None else ""
    flags = f"  [{'; '.join(row.flags)}]" if row.flags else ""
    return (
        f"{row.key}: {rate}{ratio}, p50 {_num(row.p50_ms, 1)} ms,"
        f" p99 {_num(row.p99_ms, 1)} ms{flags}"
    )


def _size(size: int | None) -> str:
    if size is None:
        return ""
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1000 and size % 1000 == 0:
        return f"{size // 1000}k"
    return str(size)


def results_table(rows: list[Row], with_size: bool = False) -> str:
    head = ["scenario"]
    if with_size:
        head.append("items in DB")
    head += [
        "req/s",
        "p50 ms",
        "p99 ms",
        "× baseline",
        "requests",
        "non-2xx",
        "SQL stmts/req",
        "SQL txns/req",
        "Redis round trips/req",
        "Redis cmds/req (load)",
        "app metrics SQL / Redis per req",
        "flags",
    ]
    rounds = any(len(row.extra.get("samples", [])) > 1 for row in rows)
    if rounds:
        head.insert(head.index("req/s") + 1, "req/s per round")
    paired = any(row.extra.get("paired_baseline_rps") for row in rows)
    if paired:
        head.insert(head.index("× baseline") + 1, "baseline just before, req/s")
    counted = any(row.exact is not None for row in rows)
    exact_columns = ("SQL stmts/req", "SQL txns/req", "Redis round trips/req")
    if not counted:
        head = [name for name in head if name not in exact_columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        exact = row.exact or Counts()
        baseline = row.key == "baseline"
        metrics = "n/a"
        source = exact if exact.metrics_sql is not None else row.load
        if source.metrics_sql is not None:
            metrics = f"{_per(source.metrics_sql)} / {_per(source.metrics_redis)}"
        cells = [row.label]
        if with_size:
            cells.append(_size(row.size))
        cells.append(_num(row.rps) if row.rps is not None else "—")
        if rounds:
            cells.append(
                " / ".join(_num(sample.get("rps")) for sample in row.extra.get("samples", []))
                or "—"
            )
        cells += [
            _num(row.p50_ms, 1),
            _num(row.p99_ms, 1),
            _ratio(row.ratio),
        ]
        if paired:
            paired_rps = row.extra.get("paired_baseline_rps")
            cells.append(_num(paired_rps) if paired_rps else "—")
        cells += [
            f"{row.requests:,}",
            str(row.errors),
        ]
        if counted:
            cells += [
                "0" if baseline else _per(exact.sql_statements),
                "0" if baseline else _per(exact.sql_transactions),
                "0" if baseline else _per(exact.redis_round_trips),
            ]
        cells += [
            _per(row.load.redis_commands),
            "—" if baseline else metrics,
            "; ".join(row.flags) or "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def breakdown_table(rows: list[Row]) -> str:
    lines = [
        "| scenario | SQL statements per request (counting pass) | Redis round trips per request |",
        "|---|---|---|",
    ]
    for row in rows:
        if row.exact is None:
            continue
        sql = ", ".join(f"{kind} {_per(n)}" for kind, n in row.exact.sql_breakdown.items()) or "n/a"
        redis = (
            ", ".join(f"{kind} {_per(n)}" for kind, n in row.exact.redis_breakdown.items())
            or "none"
        )
        lines.append(f"| {row.key} | {sql} | {redis} |")
    return "\n".join(lines)


CPU_PARTS = ("app", "postgres", "wallet", "redis", "load generator")


def cpu_table(rows: list[Row], cores: int, with_size: bool = False) -> str:
    """CPU milliseconds per request by process, and what that would allow if the stack
    had every core to itself: a figure that does not move with other work on the box."""
    head = ["scenario"] + (["items in DB"] if with_size else [])
    head += [
        "app (gunicorn)",
        "PostgreSQL",
        "wallet",
        "Redis",
        "load generator",
        "total",
        "CPU-bound req/s if alone",
        "machine busy",
        "of which others (≤)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if not row.cpu_ms:
            continue
        total = sum(row.cpu_ms.get(part, 0.0) for part in CPU_PARTS)
        cells = [row.key] + ([_size(row.size)] if with_size else [])
        cells += [f"{row.cpu_ms.get(part, 0.0):.2f}" for part in CPU_PARTS]
        cells.append(f"{total:.2f}")
        cells.append(f"{cores * 1000 / total:,.0f}" if total > 0 else "n/a")
        cells.append(f"{100 * row.cpu_busy:.0f} %" if row.cpu_busy is not None else "n/a")
        cells.append(f"{100 * row.cpu_others:.0f} %" if row.cpu_others is not None else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


PROFILE_AREA_COLUMNS = 8  # the areas with the largest shares; the others add up to "rest"
PROFILE_TOP = 10
PROFILE_OURS_TOP = 5
PROFILE_UNDER_TOP = 6
# Under nearly every sample of the app: not worth a place in "on the stack".
# (flask-smorest's decorators wrap every view, so its area is under nearly all of it too.)
PROFILE_FRAMEWORK_AREAS = frozenset(
    {"gunicorn", "flask/werkzeug", "marshmallow/webargs/smorest", IDLE, OTHER, NO_FRAME}
)


def _share(share: float) -> str:
    """A share of samples: whole percents, one decimal below 10 %."""
    if share <= 0:
        return "—"
    return f"{100 * share:.0f} %" if share >= 0.095 else f"{100 * share:.1f} %"


def _profiles(rows: list[Row]) -> list[tuple[str, ProfileSummary]]:
    found = []
    for row in rows:
        data = row.extra.get("profile")
        if not data:
            continue
        summary = ProfileSummary.from_json(data)
        if summary.samples:
            name = row.key + (f" ({_size(row.size)} items)" if row.size is not None else "")
            found.append((name, summary))
    return found


def profile_area_table(profiles: list[tuple[str, ProfileSummary]]) -> str:
    """Scenarios × the areas that took the largest share of any scenario's samples."""
    areas = {area for _, summary in profiles for area in summary.areas}
    ranked = sorted(areas, key=lambda a: (-max(s.share(a) for _, s in profiles), a))
    shown = ranked if len(ranked) <= PROFILE_AREA_COLUMNS + 1 else ranked[:PROFILE_AREA_COLUMNS]
    rest = len(shown) < len(ranked)
    head = ["scenario", "samples", *shown] + (["rest"] if rest else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, summary in profiles:
        cells = [name, f"{summary.samples:,}"]
        cells += [_share(summary.share(area)) for area in shown]
        if rest:
            cells.append(_share(1 - sum(summary.share(area) for area in shown)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_functions(profiles: list[tuple[str, ProfileSummary]]) -> str:
    """Per scenario: the functions most often innermost on the stack; the areas most often
    anywhere on it (what runs under SQLAlchemy includes psycopg); our own functions most
    often anywhere on it."""
    lines = []
    for name, summary in profiles:
        lines.append(
            f"- **{name}** ({summary.samples:,} samples,"
            f" {summary.workers} worker{'' if summary.workers == 1 else 's'}):"
            f" {_listed(summary.top_self[:PROFILE_TOP], summary.samples)}"
        )
        under = [
            (area, n)
            for area, n in summary.areas_inclusive.items()
            if area not in PROFILE_FRAMEWORK_AREAS and n / summary.samples >= 0.01
        ]
        if under:
            listed = ", ".join(
                f"{area} {_share(n / summary.samples)}" for area, n in under[:PROFILE_UNDER_TOP]
            )
            lines.append(f"  on the stack: {listed}")
        if summary.top_ours:
            ours = _listed(summary.top_ours[:PROFILE_OURS_TOP], summary.samples)
            lines.append(f"  our functions, on the stack: {ours}")
    return "\n".join(lines)


def _listed(pairs: list[tuple[str, int]], total: int) -> str:
    return ", ".join(f"`{label}` {_share(n / total)}" for label, n in pairs)


def profile_section(rows: list[Row]) -> str:
    profiles = _profiles(rows)
    if not profiles:
        return ""
    rate = profiles[0][1].rate
    cpu_s = sum(summary.py_spy_cpu_s for _, summary in profiles)
    errors = sum(summary.py_spy_errors for _, summary in profiles)
    behind = max(summary.py_spy_behind_s for _, summary in profiles)
    lagged = f", fell behind its rate by up to {behind:.1f} s" if behind > 0 else ""
    return (
        "Where the app's CPU went (py-spy, on-CPU samples): `py-spy record --subprocesses"
        f" --nonblocking --rate {rate}` on gunicorn's master and its workers for the length"
        " of each wrk run (the storms are not profiled). Without `--idle` py-spy keeps only"
        " the threads the kernel shows running or ready to run, so every sample is CPU"
        " used (or, on a busy machine, waited for); a thread blocked on a socket, a lock or"
        " the GIL is not counted. A sample counts for the innermost frame on its stack that"
        " belongs to a known area: a library, or a subpackage of ours (which so includes"
        f" the standard-library code it calls itself). {IDLE}: the innermost frame is a"
        " socket read, select/poll, a lock wait or the thread pool's queue (system calls,"
        " wake-ups). py-spy itself used"
        f" {cpu_s:.1f} CPU s ({errors} stack reads failed{lagged}), counted as ours in"
        ' "of which others"; profiling lowers req/s, the shares are the figures to read.'
        "\n\n" + profile_area_table(profiles) + "\n\n"
        "Functions with the most samples of their own (innermost frame; share of the"
        " scenario's samples), then the areas and our functions found anywhere on the"
        " stack:\n\n" + profile_functions(profiles)
    )


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    wanted: str
    status: str  # PASS | FAIL | n/a | INVALID


def _status(ok: bool, *rows: Row | None) -> str:
    if any(r is not None and r.flags for r in rows):
        return "INVALID (errors in the run)"
    return "PASS" if ok else "FAIL"


def _ratio_target(name: str, row: Row | None, ref: Row | None, threshold: float) -> Target:
    """``row`` against ``ref`` (the baseline, or another scenario). Where both sides were
    paired (``bench.run.pair``), through the baseline measured right before each, so that
    the machine's drift between the two measurements cancels out; the raw ratio is shown
    too."""
    if row is None or ref is None or row.rps is None or ref.rps is None or ref.rps == 0:
        return Target(name, "not measured", f"≥ {threshold}", "n/a")
    raw = row.rps / ref.rps
    paired = row.extra.get("paired_ratio")
    if paired is not None and ref.key == "baseline":
        rounds = len(row.extra.get("samples", [])) or 1
        of = f"median of the {rounds} rounds' ratios; median rates " if rounds > 1 else ""
        return Target(
            name,
            f"{paired:.3f} ({of}{row.rps:,.0f} req/s and"
            f" {row.extra['paired_baseline_rps']:,.0f} for the baseline measured just before"
            f" it; {raw:.3f} against the run's first baseline)",
            f"≥ {threshold}",
            _status(paired >= threshold, row, ref),
        )
    ref_paired = ref.extra.get("paired_ratio")
    if paired is not None and ref_paired:
        ratio = paired / ref_paired
        return Target(
            name,
            f"{ratio:.3f} ({paired:.3f} / {ref_paired:.3f} of the baseline measured just"
            f" before each; raw req/s {row.rps:,.0f} / {ref.rps:,.0f} = {raw:.3f})",
            f"≥ {threshold}",
            _status(ratio >= threshold, row, ref),
        )
    return Target(
        name,
        f"{raw:.3f} ({row.rps:,.0f} / {ref.rps:,.0f} req/s)",
        f"≥ {threshold}",
        _status(raw >= threshold, row, ref),
    )


def targets(run: Run, wait_s: float, delay_ms: int) -> list[Target]:
    if run.mode == "scale":
        return scale_targets(run, delay_ms)
    base = run.row("baseline")
    found = [
        _ratio_target("replay ≥ 0.6× baseline", run.row("replay"), base, 0.6),
        _ratio_target(
            "first-time cashout, wallet instant ≥ 0.25× baseline", run.row("cashout"), base, 0.25
        ),
        _ratio_target(
            f"cashout, wallet {delay_ms} ms ≥ 0.5× wallet instant",
            run.row(f"cashout_{delay_ms}ms"),
            run.row("cashout"),
            0.5,
        ),
    ]
    limit_ms = wait_s * 1000 + 200
    for key in ("storm", f"storm_{delay_ms}ms"):
        storm = run.row(key)
        if storm is None:
            continue
        credits = storm.extra.get("wallet_credits")
        found.append(
            Target(
                f"{key}: exactly one wallet credit",
                f"{credits} credit(s), {storm.extra.get('distinct_200_bodies')} distinct 200 body",
                "1",
                "PASS" if credits == 1 else "FAIL",
            )
        )
        p99 = storm.p99_ms or 0.0
        found.append(
            Target(
                f"{key}: p99 < idempotency wait + 200 ms",
                f"{p99:,.0f} ms",
                f"< {limit_ms:,.0f} ms",
                _status(p99 < limit_ms, storm),
            )
        )
    memory = run.memory.get("memory_usage_mean_bytes")
    per_key = run.memory.get("freed_per_key_bytes")
    if memory is not None:
        worst = max(memory, per_key or 0)
        found.append(
            Target(
                "Redis memory per completed idempotency record ≤ 512 B",
                f"{memory:.0f} B (MEMORY USAGE, mean of {run.memory.get('sampled_keys')} keys);"
                f" {_num(per_key)} B (used_memory freed by deleting them)",
                f"≤ {MEMORY_TARGET_BYTES} B",
                "PASS" if worst <= MEMORY_TARGET_BYTES else "FAIL",
            )
        )
    else:
        found.append(
            Target(
                "Redis memory per completed idempotency record ≤ 512 B",
                "not measured",
                "≤ 512 B",
                "n/a",
            )
        )
    return found


def _cpu_total(row: Row | None) -> float:
    return sum(row.cpu_ms.values()) if row is not None else 0.0


def scale_targets(run: Run, delay_ms: int) -> list[Target]:
    sizes = sorted({row.size for row in run.rows if row.size is not None})
    if len(sizes) < 2:
        return []
    small, large = sizes[0], sizes[-1]
    found = []
    for key in ("replay", "cashout", f"cashout_{delay_ms}ms", "cancel", f"cancel_{delay_ms}ms"):
        big, little = run.row(key, large), run.row(key, small)
        target = _ratio_target(
            f"{key}: {_size(large)} items ≥ 0.9× {_size(small)} items", big, little, 0.9
        )
        if _cpu_total(big) > 0 and _cpu_total(little) > 0:
            # The same comparison in CPU per request, which other work moves far less.
            target = Target(
                target.name,
                f"{target.measured}; CPU per request {_cpu_total(little):.2f} →"
                f" {_cpu_total(big):.2f} ms ({_cpu_total(little) / _cpu_total(big):.2f})",
                target.wanted,
                target.status,
            )
        found.append(target)
    return found


def targets_table(found: list[Target]) -> str:
    lines = ["| target | measured | wanted | result |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {t.measured} | {t.wanted} | {t.status} |" for t in found]
    return "\n".join(lines)


def record_block(run: Run) -> str:
    record = run.record
    machine = record.get("machine", {})
    gunicorn = record.get("gunicorn", {})
    app = record.get("app", {})
    lines = [
        f"- Command: `{run.command.strip()}` ({run.mode}); started {run.started_at},"
        f" took {run.elapsed_s:.0f} s; code at `{record.get('git')}`.",
        f"- Machine: {machine.get('cpu')}, {machine.get('cores')} cores,"
        f" {machine.get('memory_gib')} GiB, kernel {machine.get('kernel')};"
        f" load average at start {machine.get('loadavg_at_start')}, at end"
        f" {machine.get('loadavg_at_end')}; CPU busy before the bench started"
        f" {100 * float(machine.get('busy_share_before_start', 0)):.0f} %"
        " (other work on the machine).",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in record.get("versions", {}).items()) + ".",
        "- gunicorn (`config/gunicorn.py` unchanged, evaluated under the run's environment): "
        + ", ".join(f"{k}={v}" for k, v in gunicorn.items() if k != "bind")
        + ".",
        "- App: "
        + ", ".join(f"{k}={v}" for k, v in app.items() if k != "set_by_bench")
        + "; SQLAlchemy pool per worker = pool_size + max_overflow.",
        "- PostgreSQL (shared server): "
        + ", ".join(f"{k}={v}" for k, v in record.get("postgresql_settings", {}).items())
        + ".",
        "- Load generator: "
        + ", ".join(f"{k}={v}" for k, v in record.get("load_generator", {}).items())
        + ".",
    ]
    counting = record.get("counting")
    if counting:
        lines.append(
            f"- Counting pass: PostgreSQL log `{counting.get('postgresql_log')}`"
            f" (usable: {counting.get('postgresql_log_usable')})."
        )
    if "items_in_database" in record:
        lines.append(
            f"- Items in the database per step: {record['items_in_database']};"
            f" background load took {record.get('background_load_s')} s."
        )
    return "\n".join(lines)


def memory_block(run: Run) -> str:
    memory = run.memory
    if not memory:
        return ""
    return (
        "Redis memory per completed idempotency record (the cashout records left at the end"
        f" of the run, {memory.get('records')} keys in Redis): MEMORY USAGE mean"
        f" {_num(memory.get('memory_usage_mean_bytes'))} B over {memory.get('sampled_keys')}"
        f" keys (value {_num(memory.get('value_length_mean_bytes'))} B of JSON); deleting"
        f" them freed {_num(memory.get('freed_by_delete_bytes'))} B of used_memory ="
        f" {_num(memory.get('freed_per_key_bytes'))} B per record (key, value, expiry entry,"
        f" allocator rounding); TTL {memory.get('sample_ttl_s')} s. Example:\n\n"
        f"```\n{memory.get('example_key')}\n{memory.get('example_value')}\n```"
    )


def render(run: Run, duration_s: float) -> str:
    wait_s = float(run.record.get("app", {}).get("idempotency_wait_seconds", 2.0))
    delay_ms = int(run.record.get("load_generator", {}).get("wallet_delay_ms", 50))
    busy = float(run.record.get("machine", {}).get("busy_share_before_start", 0))
    others = max((row.cpu_others or 0.0 for row in run.rows), default=0.0)
    loaded = busy > 0.10 or others > 0.15
    parts = []
    title = {
        "full": "Full run",
        "quick": "Quick run (smoke check: short durations, figures indicative only)",
        "scale": "Scaling run",
    }[run.mode]
    parts.append(f"### {title}: {run.started_at}")
    if loaded:
        parts.append(
            f"> Measured on a **loaded machine**: other work used {100 * busy:.0f} % of the"
            f" CPU before the run and up to {100 * others:.0f} % during a scenario (see the"
            " CPU table). Absolute req/s are low and noisy; the ratios to the baseline of the"
            " same run and the CPU milliseconds per request are the figures to compare."
        )
    counted = any(row.exact is not None for row in run.rows)
    parts.append(
        f"wrk: 1 thread, {run.record.get('load_generator', {}).get('wrk_connections')}"
        f" connections, {duration_s:g} s per scenario."
        + (
            " SQL and Redis round trips per request come from the counting pass (exact,"
            " sequential requests)"
            if counted
            else " No counting pass in this run (the full run has the exact counts); the"
            " app's own counters are shown"
        )
        + "; Redis commands under load include commands run inside Lua scripts."
        + _pairing_note(run)
    )
    parts.append(results_table(run.rows, with_size=run.mode == "scale"))
    found = targets(run, wait_s, delay_ms)
    if found:
        parts.append("Targets (reported, not enforced):\n\n" + targets_table(found))
    cores = int(run.record.get("machine", {}).get("cores") or 1)
    if any(row.cpu_ms for row in run.rows):
        parts.append(
            "CPU milliseconds per request, by process (from /proc; PostgreSQL: the backends"
            " of our database, read every 250 ms during the run):\n\n"
            + cpu_table(run.rows, cores, with_size=run.mode == "scale")
        )
    if any(row.exact for row in run.rows):
        parts.append("Where the statements and round trips go:\n\n" + breakdown_table(run.rows))
    profiled = profile_section(run.rows)
    if profiled:
        parts.append(profiled)
    storms = [row for row in run.rows if row.key.startswith("storm")]
    for storm in storms:
        extra = storm.extra
        parts.append(
            f"{storm.key}: statuses {json.dumps({str(k): v for k, v in storm.statuses.items()})},"
            f" {extra.get('replayed')} replayed, wallet credits for the item"
            f" {extra.get('wallet_credits')} (wallet applied {extra.get('wallet_applied')},"
            f" calls {extra.get('wallet_calls')}), ledger {extra.get('ledger_movements')},"
            f" burst took {float(extra.get('wall_s', 0)) * 1000:,.0f} ms."
        )
    block = memory_block(run)
    if block:
        parts.append(block)
    parts.append("Run record:\n\n" + record_block(run))
    return "\n\n".join(parts) + "\n"


def _pairing_note(run: Run) -> str:
    seconds = run.record.get("load_generator", {}).get("paired_baseline_s")
    if not seconds or not any(row.extra.get("paired_ratio") for row in run.rows):
        return ""
    return (
        f" Each scenario's × baseline is its ratio to the baseline measured again for"
        f" {seconds:g} s right before it (the baseline server stays up, idle, all run), so"
        " that the machine's drift between the first baseline and a scenario minutes later"
        " cancels out; with rounds, the median of the rounds' ratios."
    )


def replace_section(document: str, section: str, body: str) -> str:
    """Put ``body`` between the section's markers (appending them if absent)."""
    begin, end = MARKERS[section]
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document, count=1)
    return document.rstrip() + "\n\n" + block + "\n"


def update_doc(path: Path, run: Run, text: str) -> None:
    section = "scale" if run.mode == "scale" else "results"
    document = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_section(document, section, text))
